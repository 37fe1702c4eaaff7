"""``regurg-bench check``: the regression gate for data pipelines.

Wired into the main CLI with ``register(app)``; ``python -m regurg_bench.checks`` runs it standalone.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from regurg_bench.console import print_error

#: The committed baseline of the small CI split (its build config lies next to it).
DEFAULT_BASELINE = Path(__file__).parent / "baselines" / "ci_split.baseline.yaml"

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


def register(app: typer.Typer) -> None:
    """Add the ``check`` command to ``app``."""

    @app.command("check")
    def check_cmd(
        target: Annotated[Path | None, typer.Argument(
            help="A built split folder (with manifest.json) to check, or a build config (YAML) to build "
                 "into a temporary folder and check. Default: the config the baseline names.")] = None,
        baseline: Annotated[Path | None, typer.Option(
            "--baseline", "-b", help="Baseline file (YAML, or JSON by extension), committed with the code. "
                                     "Default: the CI split's, regurg_bench/checks/baselines/"
                                     "ci_split.baseline.yaml.")] = None,
        rebuild: Annotated[Path | None, typer.Option(
            "--rebuild", help="Build this config into TARGET (a folder; default: a temporary one) first.")] = None,
        cache: Annotated[Path | None, typer.Option(
            "--cache", help="Generation cache folder for rebuilds (default: ~/.cache/regurg_bench/generations).")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the results as JSON here.")] = None,
        junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (one testcase per "
                                                                     "statistic).")] = None,
        update: Annotated[bool, typer.Option(
            "--update-baseline", help="Accept the current statistics: rewrite the baseline (tolerances kept) "
                                      "and exit 0.")] = False,
        allow_content_change: Annotated[bool, typer.Option(
            "--allow-content-change", help="Report changed fingerprints and generator signatures as warnings, "
                                           "not failures (bytes differ, e.g. another Apertium version); "
                                           "every other statistic still gates.")] = False,
        show_all: Annotated[bool, typer.Option("--all", help="List passing statistics too.")] = False,
        diagnostics: Annotated[bool, typer.Option("--diagnostics/--no-diagnostics",
                                                  help="Compute the diagnostic statistics.")] = True,
    ) -> None:
        """Check a built split against a committed baseline: fingerprints, sizes, generator mix and
        signatures, duplicates, leakage of the test set (Acts), length statistics and diagnostics
        (error proxies, diversity, uniformity), each with its tolerance. Exit 0 when everything is
        within tolerance, 1 when something is not (with a diff table), 2 on bad input.

        Examples: `regurg-bench check` (rebuild the CI split the default baseline names);
        `regurg-bench check runs/splits/default --baseline my.baseline.yaml --junit check.xml`;
        `regurg-bench check my_config.yaml --baseline my.baseline.yaml --update-baseline`.
        """
        from rich.console import Console

        from regurg_bench.builders.config import ConfigError
        from regurg_bench.checks.baseline import (
            BaselineError,
            load_baseline,
            updated_baseline,
            write_baseline,
        )
        from regurg_bench.checks.compare import compare, summary
        from regurg_bench.checks.report import print_report, write_json, write_junit
        from regurg_bench.checks.stats import SplitError, collect_stats
        from regurg_bench.corpora import CorpusError

        # Logs (CI, pipes) get a wide table; a terminal keeps its own width.
        console = Console() if sys.stdout.isatty() else Console(width=150)
        err = Console(stderr=True)
        started = time.perf_counter()

        def fail(message: str) -> typer.Exit:
            print_error(f"{message}")
            return typer.Exit(2)

        baseline = baseline or DEFAULT_BASELINE
        old = None
        if baseline.exists() or not update:
            try:
                old = load_baseline(baseline)
            except BaselineError as exc:
                raise fail(str(exc)) from None
        config = rebuild
        if target is not None and target.is_file():
            if rebuild is not None:
                raise fail("give a config either as TARGET or with --rebuild, not both")
            config, target = target, None
        if target is None and config is None:
            config = old.config_path() if old else None
            if config is None:
                raise fail("nothing to check: give a split folder or a config (the baseline names none)")
        if target is not None and config is None and not target.is_dir():
            raise fail(f"{target}: no such split folder or config file")

        with tempfile.TemporaryDirectory(prefix="regurg-check-") as tmp:
            split = target if target is not None else Path(tmp) / "split"
            try:
                if config is not None:
                    err.print(Text(f"building {config} into {split}...", style="dim"))
                    build_split(config, split, cache)
                collected = collect_stats(split, diagnostics=diagnostics)
            except (ConfigError, SplitError, CorpusError, ValueError, NotImplementedError) as exc:
                raise fail(str(exc)) from None
        label = str(target) if target is not None else f"{config} (rebuilt)"
        current, notes = collected["stats"], collected["notes"]
        if old is None:  # --update-baseline creating a new baseline
            from regurg_bench.checks.baseline import Baseline

            old = Baseline(stats={}, path=baseline)
        results = compare(current, old, allow_content_change=allow_content_change)
        seconds = time.perf_counter() - started
        if json_out:
            write_json(results, json_out, split=label, baseline=str(baseline), notes=notes)
        if junit:
            write_junit(results, junit, split=label, seconds=seconds)
        print_report(results, split=label, baseline=str(baseline), console=console, show_all=show_all, notes=notes)
        if update:
            cfg_rel = None
            if config is not None:
                cfg_rel = os.path.relpath(Path(config).resolve(), baseline.resolve().parent)
            new = updated_baseline(current, old, config=cfg_rel)
            write_baseline(new, baseline)
            console.print(f"[bold]baseline updated:[/bold] {baseline} ({len(new.stats)} statistics); commit it.")
            return
        counts = summary(results)
        if counts["fail"] + counts["missing"]:
            raise typer.Exit(1)
