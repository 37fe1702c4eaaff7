"""``regurg-bench diagnose``: the diagnostics of one split as a table, JSON and a PNG.

Wired into the main CLI with ``register(app)``; kept here so the CLI module stays a thin layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from regurg_bench.console import print_error
from regurg_bench.diagnostics.base import DIAGNOSTICS  # help lists (typer reads annotations at module level)
from regurg_bench.diagnostics.runner import DEFAULT_DIAGNOSTICS


def _parse_generated(values: list[str]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise typer.BadParameter(f"expected NAME=FILE, got {value!r}", param_hint="--generated")
        if name in out:
            raise typer.BadParameter(f"condition {name!r} given twice", param_hint="--generated")
        out[name] = Path(path)
    return out


def register(app: typer.Typer) -> None:
    """Add the ``diagnose`` command to ``app``."""

    @app.command("diagnose")
    def diagnose_cmd(
        split_dir: Annotated[Path | None, typer.Argument(
            help="Folder with `real.jsonl` and `regurg_<name>.jsonl` (or one sub-folder of JSONL per "
                 "condition). Rows: `id, source, target, src_lang, tgt_lang`.")] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="Folder for diagnostics.json and diagnostics.png "
                                "(default: SPLIT_DIR/diagnostics, or ./diagnostics).")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report instead of the table.")] = False,
        real: Annotated[Path | None, typer.Option("--real", help="The human condition's JSONL file.")] = None,
        generated: Annotated[list[str] | None, typer.Option(
            "--generated", "-g", help="A generated condition as NAME=FILE (repeatable).")] = None,
        include: Annotated[list[str] | None, typer.Option(
            "--include", help="More file-name patterns of SPLIT_DIR conditions to compare, besides "
                              "`regurg_*` (repeatable), e.g. `mix_*`.")] = None,
        only: Annotated[str | None, typer.Option(
            "--only", help=f"Comma-separated diagnostics to run (default: {', '.join(DEFAULT_DIAGNOSTICS)}); "
                           f"registered: {DIAGNOSTICS.help_list()}.")] = None,
        limit: Annotated[int | None, typer.Option("--limit", "-L", min=1, help="Only the first N shared ids.")] = None,
        src_lang: Annotated[str | None, typer.Option("--src-lang", "-s", help="For rows without src_lang.")] = None,
        tgt_lang: Annotated[str | None, typer.Option("--tgt-lang", "-t", help="For rows without tgt_lang.")] = None,
        plot: Annotated[bool, typer.Option("--plot/--no-plot", help="Write the PNG.")] = True,
    ) -> None:
        """Diagnose generated data against the human data of the same ids: error-rate proxies, lexical
        diversity and format uniformity, per condition.

        Example: `regurg-bench diagnose builds/default` or
        `regurg-bench diagnose --real real.jsonl -g apertium=apertium.jsonl -o diag/`
        """
        from rich.console import Console

        from regurg_bench.corpora import CorpusError
        from regurg_bench.diagnostics import DEFAULT_DIAGNOSTICS, diagnose
        from regurg_bench.diagnostics.loading import DEFAULT_INCLUDE, load_conditions

        err = Console(stderr=True)
        if split_dir is None and real is None:
            print_error("give SPLIT_DIR, or --real FILE with --generated NAME=FILE")
            raise typer.Exit(2)
        names = [n.strip() for n in only.split(",") if n.strip()] if only else list(DEFAULT_DIAGNOSTICS)
        try:
            conditions = load_conditions(split_dir, real=real, generated=_parse_generated(generated or []),
                                         include=(*DEFAULT_INCLUDE, *(include or [])), src_lang=src_lang,
                                         tgt_lang=tgt_lang)
            report = diagnose(conditions, diagnostics=names, limit=limit,
                              label=str(split_dir) if split_dir is not None else str(real),
                              progress=None if as_json else (lambda name: err.print(Text(f"{name}...", style="dim"))))
        except (CorpusError, ValueError) as exc:
            print_error(f"{exc}")
            raise typer.Exit(2) from None
        out_dir = out or (split_dir / "diagnostics" if split_dir is not None else Path("diagnostics"))
        json_path = report.write_json(out_dir / "diagnostics.json")
        png_path = None
        if plot:
            try:
                png_path = report.plot(out_dir / "diagnostics.png")
            except ImportError as exc:  # matplotlib missing: the numbers still stand
                err.print(Text("no plot: ", style="yellow") + Text(f"{exc} (pip install matplotlib)"))
        if as_json:
            print(report.to_json())
            return
        report.print_table(Console())
        err.print(Text(f"wrote {json_path}" + (f" and {png_path}" if png_path else "")))
