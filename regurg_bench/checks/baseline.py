"""The committed baseline: every statistic's accepted value and how far it may move.

A baseline is a YAML (or JSON, by extension) file::

    schema: 1
    config: ci_split.config.yaml     # optional: what `check` rebuilds when given no split (relative path)
    stats:
      real.pairs: {value: 200, tolerance: exact}
      regurg_apertium.diag.chrf_mean: {value: 39.15, tolerance: {abs: 1.0}}
      regurg_apertium.diag.mtld: {value: 75.7, tolerance: {rel: 0.05}}

Tolerances: ``exact`` (equality; the only one for strings and booleans), ``{abs: x}`` (``|cur - base|
<= x``), ``{rel: r}`` (``<= r * |base|``); ``{abs: x, rel: r}`` allows the larger of the two.

Content hashes (``*.fingerprint``, ``generator.*.signature``) are ``exact``: any byte of any row, or any
output-relevant setting of a generator, changes them, and that is the point: in the environment that
made the baseline a change is a real change, to be accepted on purpose with ``--update-baseline``.
They are marked ``content: true`` so that ``check --allow-content-change`` reports their mismatch as a
warning instead, for runs where bytes legitimately differ (another Apertium package version on a CI
image, a re-generated split): the counts, leakage, duplicates, lengths and diagnostics still gate then.
Hand-edited tolerances survive ``--update-baseline``; only values (and new statistics) are rewritten.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from regurg_bench.atomic import atomic_write

SCHEMA_VERSION = 1


class BaselineError(ValueError):
    """A baseline file that cannot be read or does not validate."""


@dataclass(frozen=True)
class Tolerance:
    """``exact`` when both are None; otherwise the larger of ``abs`` and ``rel * |baseline|``."""

    abs: float | None = None
    rel: float | None = None

    @property
    def exact(self) -> bool:
        return self.abs is None and self.rel is None

    def to_yaml(self) -> str | dict[str, float]:
        if self.exact:
            return "exact"
        return {k: v for k, v in (("abs", self.abs), ("rel", self.rel)) if v is not None}

    def __str__(self) -> str:
        if self.exact:
            return "exact"
        parts = ([f"±{self.abs:g}"] if self.abs is not None else []) + \
                ([f"±{self.rel * 100:g}%"] if self.rel is not None else [])
        return " or ".join(parts)

    @classmethod
    def parse(cls, raw: Any, where: str) -> Tolerance:
        if raw in (None, "exact"):
            return cls()
        if isinstance(raw, dict) and raw and set(raw) <= {"abs", "rel"}:
            vals = {}
            for k, v in raw.items():
                if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                    raise BaselineError(f"{where}: tolerance {k} must be a number >= 0, got {v!r}")
                vals[k] = float(v)
            return cls(**vals)
        raise BaselineError(f"{where}: tolerance must be 'exact', {{abs: X}}, {{rel: R}} or both, got {raw!r}")

    def allows(self, baseline: Any, current: Any) -> bool:
        if self.exact or not _numeric(baseline) or not _numeric(current):
            if isinstance(baseline, bool) != isinstance(current, bool):  # True must not equal 1
                return False
            return baseline == current
        allowed = max(self.abs or 0.0, (self.rel or 0.0) * abs(baseline))
        return abs(current - baseline) <= allowed + 1e-12


def _numeric(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Expected:
    value: Any
    tolerance: Tolerance = field(default_factory=Tolerance)
    content: bool = False  # a content hash: --allow-content-change turns its mismatch into a warning

    def to_yaml(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "tolerance": self.tolerance.to_yaml()}
        if self.content:
            out["content"] = True
        return out


@dataclass
class Baseline:
    stats: dict[str, Expected]
    config: str | None = None  # build config to rebuild, relative to the baseline file
    description: str | None = None
    path: Path | None = None

    def config_path(self) -> Path | None:
        if not self.config:
            return None
        p = Path(self.config)
        return p if p.is_absolute() or self.path is None else self.path.parent / p

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema": SCHEMA_VERSION}
        if self.description:
            out["description"] = self.description
        if self.config:
            out["config"] = self.config
        out["stats"] = {k: self.stats[k].to_yaml() for k in sorted(self.stats)}
        return out


# -- default tolerances ----------------------------------------------------------------------------

_CONTENT = re.compile(r"(\.fingerprint|^generator\..*\.signature)$")
_RULES: list[tuple[re.Pattern[str], Tolerance]] = [
    (re.compile(r"\.diag\.(chrf|ter)_mean$"), Tolerance(abs=1.0)),
    (re.compile(r"\.diag\.source_overlap_mean$"), Tolerance(abs=1.0)),
    (re.compile(r"\.diag\.(mtld|types_at_budget)$"), Tolerance(rel=0.05)),
    (re.compile(r"\.diag\.(mattr|distinct_\d|length_words_cv|ratio_chars_mean|length_dev_from_human)$"),
     Tolerance(abs=0.02)),
    (re.compile(r"\.diag\..*_(rate|share)$"), Tolerance(abs=0.02)),
    (re.compile(r"\.len\."), Tolerance(rel=0.03)),
]


def default_tolerance(name: str, value: Any) -> Tolerance:
    """Exact for identities and counts (pairs, duplicates, leaks, generator mix); a band for measured
    statistics (diagnostics, lengths) wide enough for library-version noise, narrow enough that a
    changed generator or a different sample moves them out of it."""
    if not _numeric(value) or isinstance(value, int):
        return Tolerance()
    for pattern, tol in _RULES:
        if pattern.search(name):
            return tol
    return Tolerance() if name.endswith("generated_share") else Tolerance(rel=0.05)


def is_content_stat(name: str) -> bool:
    return bool(_CONTENT.search(name))


# -- reading and writing -----------------------------------------------------------------------------

def load_baseline(path: str | Path) -> Baseline:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{path}: baseline file does not exist (create it with --update-baseline)") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise BaselineError(f"{path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'}: {exc}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("stats"), dict):
        raise BaselineError(f"{path}: expected a mapping with a 'stats' mapping")
    if raw.get("schema", SCHEMA_VERSION) != SCHEMA_VERSION:
        raise BaselineError(f"{path}: baseline schema {raw.get('schema')!r}, expected {SCHEMA_VERSION}")
    stats = {}
    for name, entry in raw["stats"].items():
        where = f"{path}: {name}"
        if not isinstance(entry, dict) or "value" not in entry:
            raise BaselineError(f"{where}: expected {{value: ..., tolerance: ...}}")
        unknown = set(entry) - {"value", "tolerance", "content"}
        if unknown:
            raise BaselineError(f"{where}: unknown keys {sorted(unknown)}")
        stats[str(name)] = Expected(entry["value"], Tolerance.parse(entry.get("tolerance"), where),
                                    bool(entry.get("content", is_content_stat(str(name)))))
    return Baseline(stats=stats, config=raw.get("config"), description=raw.get("description"), path=path)


def updated_baseline(current: dict[str, Any], old: Baseline | None, *, config: str | None = None) -> Baseline:
    """The baseline accepting ``current``: old tolerances kept, defaults for new statistics, statistics
    that are gone dropped."""
    stats = {}
    for name, value in current.items():
        if old is not None and name in old.stats:
            prev = old.stats[name]
            stats[name] = Expected(value, prev.tolerance, prev.content)
        else:
            stats[name] = Expected(value, default_tolerance(name, value), is_content_stat(name))
    return Baseline(stats=stats, config=config if config is not None else (old.config if old else None),
                    description=old.description if old else None, path=old.path if old else None)


def write_baseline(baseline: Baseline, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = baseline.to_yaml_dict()
    with atomic_write(path) as handle:
        if path.suffix == ".json":
            handle.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        else:
            handle.write("# regurg-bench check baseline: accepted statistics of a built split and their tolerances.\n"
                         "# Regenerate with `regurg-bench check ... --update-baseline`; hand-edited tolerances are kept.\n")
            yaml.safe_dump(data, handle, sort_keys=False, allow_unicode=True, width=120)
    return path
