"""The regression gate's logic, apart from the CLI: which split to check, build it, compare, accept.

``regurg-bench check`` (:mod:`.commands`) only parses options, calls :func:`run_gate`, writes the
reports and picks the exit code; anything else that wants the gate (CI scripts, tests) calls this.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench.checks.baseline import (
    Baseline,
    BaselineError,
    load_baseline,
    updated_baseline,
    write_baseline,
)
from regurg_bench.checks.compare import CheckResult, compare, summary

#: The committed baseline of the small CI split (its build config lies next to it).
DEFAULT_BASELINE = Path(__file__).parent / "baselines" / "ci_split.baseline.yaml"


class GateInputError(ValueError):
    """Bad input to the gate (exit code 2 on the CLI): the message says what to give instead."""


@dataclass
class GateOutcome:
    """What one gate run found."""

    results: list[CheckResult]
    #: The checked split, as reports name it (a folder, or "<config> (rebuilt)").
    label: str
    baseline_path: Path
    baseline: Baseline
    #: The statistics measured now, and notes on them (skipped diagnostics...).
    current: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    config: Path | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        counts = summary(self.results)
        return not (counts["fail"] + counts["missing"])


def build_split(config_path: Path, out: Path, cache: Path | None = None) -> Path:
    """(Re)build ``config_path`` into ``out`` (always from scratch: a check must not trust an old build)."""
    from regurg_bench.builders.build import build_splits
    from regurg_bench.builders.config import load_build_config
    from regurg_bench.builders.targets import make_target_generators

    cfg = load_build_config(config_path)
    generators = make_target_generators(cfg, cache)
    try:
        build_splits(cfg, out, generators, force=True, progress=False)
    finally:
        for gen in generators.values():
            gen.close()
    return out


def resolve_inputs(target: Path | None, baseline_path: Path, rebuild: Path | None,
                   update: bool) -> tuple[Baseline | None, Path | None, Path | None]:
    """``(baseline or None, config to build or None, split folder or None)`` from the CLI's arguments:
    a TARGET that is a file is a config; no target and no config means the config the baseline names."""
    old = None
    if baseline_path.exists() or not update:
        try:
            old = load_baseline(baseline_path)
        except BaselineError as exc:
            raise GateInputError(str(exc)) from None
    config = rebuild
    if target is not None and target.is_file():
        if rebuild is not None:
            raise GateInputError("give a config either as TARGET or with --rebuild, not both")
        config, target = target, None
    if target is None and config is None:
        config = old.config_path() if old else None
        if config is None:
            raise GateInputError("nothing to check: give a split folder or a config (the baseline names none)")
    if target is not None and config is None and not target.is_dir():
        raise GateInputError(f"{target}: no such split folder or config file")
    return old, config, target


def run_gate(target: Path | None = None, *, baseline_path: Path = DEFAULT_BASELINE, rebuild: Path | None = None,
             cache: Path | None = None, update: bool = False, allow_content_change: bool = False,
             diagnostics: bool = True, on_build: Callable[[Path, Path], None] | None = None) -> GateOutcome:
    """Build (when given a config) and measure the split, and compare it with the baseline.

    Bad input (a missing folder, an unreadable baseline or config, a split the statistics cannot read)
    raises :class:`GateInputError`. ``on_build(config, folder)`` is called before a build starts.
    """
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.checks.stats import SplitError, collect_stats
    from regurg_bench.corpora import CorpusError

    started = time.perf_counter()
    old, config, target = resolve_inputs(target, baseline_path, rebuild, update)
    with tempfile.TemporaryDirectory(prefix="regurg-check-") as tmp:
        split = target if target is not None else Path(tmp) / "split"
        try:
            if config is not None:
                if on_build is not None:
                    on_build(config, split)
                build_split(config, split, cache)
            collected = collect_stats(split, diagnostics=diagnostics)
        except (ConfigError, SplitError, CorpusError, ValueError, NotImplementedError) as exc:
            raise GateInputError(str(exc)) from None
    if old is None:  # --update-baseline creating a new baseline
        old = Baseline(stats={}, path=baseline_path)
    current = collected["stats"]
    return GateOutcome(results=compare(current, old, allow_content_change=allow_content_change),
                       label=str(target) if target is not None else f"{config} (rebuilt)",
                       baseline_path=baseline_path, baseline=old, current=current, notes=collected["notes"],
                       config=config, seconds=time.perf_counter() - started)


def accept(outcome: GateOutcome) -> Baseline:
    """Rewrite the baseline with the current statistics (tolerances kept; the config path relative to
    the baseline file) and return it."""
    cfg_rel = None
    if outcome.config is not None:
        cfg_rel = os.path.relpath(Path(outcome.config).resolve(), outcome.baseline_path.resolve().parent)
    new = updated_baseline(outcome.current, outcome.baseline, config=cfg_rel)
    write_baseline(new, outcome.baseline_path)
    return new
