"""``regurg-bench check``: the regression gate for data pipelines.

Wired into the main CLI with ``register(app)``; ``python -m regurg_bench.checks`` runs it standalone.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from regurg_bench.console import print_error


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

        from regurg_bench.checks.gate import DEFAULT_BASELINE, GateInputError, accept, run_gate
        from regurg_bench.checks.report import print_report, write_json, write_junit

        # Logs (CI, pipes) get a wide table; a terminal keeps its own width.
        console = Console() if sys.stdout.isatty() else Console(width=150)
        err = Console(stderr=True)
        baseline = baseline or DEFAULT_BASELINE
        try:
            outcome = run_gate(target, baseline_path=baseline, rebuild=rebuild, cache=cache, update=update,
                               allow_content_change=allow_content_change, diagnostics=diagnostics,
                               on_build=lambda config, split: err.print(
                                   Text(f"building {config} into {split}...", style="dim")))
        except GateInputError as exc:
            print_error(f"{exc}")
            raise typer.Exit(2) from None
        label, results, notes = outcome.label, outcome.results, outcome.notes
        if json_out:
            write_json(results, json_out, split=label, baseline=str(baseline), notes=notes)
        if junit:
            write_junit(results, junit, split=label, seconds=outcome.seconds)
        print_report(results, split=label, baseline=str(baseline), console=console, show_all=show_all, notes=notes)
        if update:
            new = accept(outcome)
            console.print(f"[bold]baseline updated:[/bold] {baseline} ({len(new.stats)} statistics); commit it.")
            return
        if not outcome.passed:
            raise typer.Exit(1)
