"""The statistics ``regurg-bench check`` compares: one flat ``name -> value`` mapping per built split.

Names are dotted and stable, so a baseline file reads like a checklist:

- ``config_hash``, ``conditions``, ``generators``: what was built (from ``manifest.json``);
- ``generator.<g>.kind`` / ``.model`` / ``.signature`` (the signature hash: everything that determines
  the generator's output, see :class:`regurg_bench.generation.base.GeneratorSignature`);
  ``generator.<g>.dropped``: sources dropped because ``g`` failed on them;
- ``<condition>.pairs`` / ``.fingerprint`` / ``.generated_pairs`` / ``.generated_share`` / ``.origin.<o>``
  (the generator mix: rows per origin), all recomputed from the JSONL file, plus
  ``.manifest_consistent`` (the file still has the pairs and fingerprint the manifest recorded);
- ``<condition>.duplicate_ids`` / ``.duplicate_sources`` / ``.duplicate_targets`` (normalised text);
- ``<condition>.leaked_test_pairs``: rows whose normalised source or target equals a text of the
  embedded Bible test split (Acts) in any language, the same comparison as the corpus's leakage guard;
- ``<condition>.len.*``: word-length statistics of sources and targets;
- ``<condition>.diag.<key>``: a chosen subset of :func:`regurg_bench.diagnostics.diagnose` on ``real``
  and every ``regurg_*`` condition (the mUSE similarity left out: it needs a model and is slow).
"""

from __future__ import annotations

import functools
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import Pair, PairFingerprint

Value = str | int | float | bool | None

#: Diagnostics run by ``check`` (all but ``similarity``: it loads a sentence encoder).
CHECK_DIAGNOSTICS: tuple[str, ...] = ("reference", "length_ratio", "copy", "language", "diversity", "openings",
                                      "templates", "length_spread", "repetition")
#: The diagnostic statistics kept (others are redundant with these or too noisy to gate on).
CHECK_DIAGNOSTIC_KEYS: tuple[str, ...] = (
    "chrf_mean", "chrf_low_rate", "ter_mean", "ter_high_rate", "exact_match_rate",  # error proxies
    "ratio_chars_mean", "ratio_outlier_rate", "length_dev_from_human", "empty_rate",
    "exact_copy_rate", "high_overlap_rate", "source_overlap_mean", "wrong_language_rate", "source_language_rate",
    "mtld", "mattr", "distinct_1", "distinct_2", "types_at_budget",  # diversity
    "opening1_top_share", "template_top_share", "length_words_cv", "within_repeat_rate",  # uniformity
    "duplicate_output_rate",
)
#: The embedded test split whose texts must never appear in training data.
LEAKAGE_DIRECTIONS: tuple[str, ...] = ("en-es", "en-fr")  # together: every language of the test split


class SplitError(ValueError):
    """The folder is not a built split (no manifest, unreadable rows)."""


def normalise(text: str) -> str:
    """The leakage/duplicate comparison form: the corpus guard's own normalisation."""
    try:
        from regurg_bench.corpora.bible import normalise_for_match
    except ImportError:  # pragma: no cover - kept for corpora without it
        return " ".join(text.casefold().split())
    return normalise_for_match(text)


@functools.lru_cache(maxsize=1)
def test_set_texts() -> frozenset[str]:
    """Normalised texts of the embedded test split (Acts), every language."""
    from regurg_bench.corpora.bible import load_bible_pairs

    texts: set[str] = set()
    for direction in LEAKAGE_DIRECTIONS:
        for pair in load_bible_pairs(direction, "test"):
            texts.add(normalise(pair.source))
            texts.add(normalise(pair.target))
    texts.discard("")
    return frozenset(texts)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a split file; each must have string ``id``, ``source`` and ``target``."""
    from regurg_bench.corpora.base import CorpusError
    from regurg_bench.corpora.lines import iter_json_objects

    rows = []
    try:
        for lineno, row in iter_json_objects(path):
            if not all(isinstance(row.get(k), str) for k in ("id", "source", "target")):
                raise SplitError(f"{path}:{lineno}: expected an object with string id, source and target")
            rows.append(row)
    except CorpusError as exc:
        raise SplitError(str(exc)) from None
    return rows


def _quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _duplicates(values: Iterable[str]) -> int:
    counts = Counter(values)
    return sum(c - 1 for c in counts.values() if c > 1)


def condition_stats(name: str, rows: list[dict[str, Any]], manifest_entry: dict[str, Any] | None,
                    test_texts: frozenset[str]) -> dict[str, Value]:
    """Statistics of one condition file's rows."""
    fp = PairFingerprint()
    for r in rows:  # exactly what the builder hashed
        fp.update(Pair(r["id"], r["source"], r["target"], r.get("src_lang") or "und", r.get("tgt_lang") or "und"))
    n = len(rows)
    origins = Counter(r.get("origin") or "human" for r in rows)
    generated = n - origins.get("human", 0)
    src_norm = [normalise(r["source"]) for r in rows]
    tgt_norm = [normalise(r["target"]) for r in rows]
    src_len = [len(r["source"].split()) for r in rows]
    tgt_len = [len(r["target"].split()) for r in rows]
    out: dict[str, Value] = {
        f"{name}.pairs": n,
        f"{name}.fingerprint": fp.hexdigest(),
        f"{name}.generated_pairs": generated,
        f"{name}.generated_share": round(generated / n, 6) if n else None,
    }
    out |= {f"{name}.origin.{o}": c for o, c in sorted(origins.items())}
    if manifest_entry is not None:
        out[f"{name}.manifest_consistent"] = (manifest_entry.get("pairs") == n
                                              and manifest_entry.get("fingerprint") == fp.hexdigest())
    out |= {
        f"{name}.duplicate_ids": _duplicates(r["id"] for r in rows),
        f"{name}.duplicate_sources": _duplicates(src_norm),
        f"{name}.duplicate_targets": _duplicates(tgt_norm),
        f"{name}.leaked_test_pairs": sum(1 for s, t in zip(src_norm, tgt_norm, strict=True)
                                         if s in test_texts or t in test_texts),
        f"{name}.len.src_words_mean": _mean(src_len),
        f"{name}.len.tgt_words_mean": _mean(tgt_len),
        f"{name}.len.tgt_words_p05": _quantile(tgt_len, 0.05),
        f"{name}.len.tgt_words_p95": _quantile(tgt_len, 0.95),
        f"{name}.len.tgt_words_max": max(tgt_len, default=None),
    }
    return out


def diagnostic_stats(split_dir: Path) -> tuple[dict[str, Value], dict[str, str]]:
    """The chosen diagnostics on ``real`` and every ``regurg_*`` condition; plus the diagnostics' notes."""
    from regurg_bench.corpora.base import CorpusError
    from regurg_bench.diagnostics import diagnose

    try:
        report = diagnose(split_dir, diagnostics=CHECK_DIAGNOSTICS, label=str(split_dir))
    except CorpusError as exc:  # e.g. duplicate ids: the diagnostic statistics go missing (and fail)
        return {}, {"all": f"not computed: {exc}"}
    out: dict[str, Value] = {}
    for cond in report.conditions:
        for key in CHECK_DIAGNOSTIC_KEYS:
            value = report.value(cond, key)
            if value is not None:
                out[f"{cond}.diag.{key}"] = value
    out["diag.shared_pairs"] = report.n_pairs
    return out, dict(report.notes)


def collect_stats(split_dir: str | Path, *, diagnostics: bool = True) -> dict[str, Any]:
    """Every checked statistic of a built split folder.

    Returns ``{"stats": {name: value}, "notes": [...], "split": str}``; values are JSON scalars.
    """
    split = Path(split_dir)
    manifest_path = split / "manifest.json"
    if not manifest_path.is_file():
        raise SplitError(f"{split}: no manifest.json; not a folder written by `regurg-bench build`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SplitError(f"{manifest_path}: invalid JSON: {exc.msg}") from None
    conditions: dict[str, dict[str, Any]] = manifest.get("conditions", {})
    stats: dict[str, Value] = {
        "config_hash": manifest.get("config_hash"),
        "conditions": ",".join(sorted(conditions)),
        "generators": ",".join(sorted(manifest.get("generators", {}))),
        "corpus_pairs": manifest.get("corpus_pairs"),
        "sampled": manifest.get("sampled"),
    }
    for g, sig in sorted(manifest.get("generators", {}).items()):
        stats[f"generator.{g}.kind"] = sig.get("kind")
        stats[f"generator.{g}.model"] = sig.get("model")
        stats[f"generator.{g}.signature"] = sig.get("hash")
    for g, d in sorted(manifest.get("dropped_failed_generation", {}).items()):
        stats[f"generator.{g}.dropped"] = d.get("count")
    notes: list[str] = []
    test_texts = test_set_texts()
    for name, entry in conditions.items():
        path = split / entry.get("file", f"{name}.jsonl")
        if not path.is_file():
            notes.append(f"condition {name}: file {path.name} is missing")
            continue
        stats |= condition_stats(name, read_rows(path), entry, test_texts)
    if diagnostics and (split / "real.jsonl").is_file():
        diag, diag_notes = diagnostic_stats(split)
        stats |= diag
        notes += [f"diagnostic {k}: {v}" for k, v in diag_notes.items()]
    return {"split": str(split), "stats": stats, "notes": notes}
