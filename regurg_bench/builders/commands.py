"""``regurg-bench build``: matched real and regurgitated splits from a YAML config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from regurg_bench.console import print_error


def register(app: typer.Typer) -> None:
    @app.command("build")
    def build(
        config: Annotated[Path | None, typer.Argument(
            help="YAML config (see `regurg_bench/builders/example_config.yaml`). "
                 "Default: the embedded corpus (en-es Bible verses, 3,000 sources) with Apertium.")] = None,
        out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")] = Path("runs/splits/default"),
        force: Annotated[bool, typer.Option("--force", help="Rebuild even if the folder is up to date.")] = False,
        cache: Annotated[Path | None, typer.Option(
            "--cache", help="Generation cache folder (default: ~/.cache/regurg_bench/generations).")] = None,
    ) -> None:
        """Build matched REAL and REGURGITATED training splits: same sources and ids, human vs
        generated targets, plus ratio mixes, size ladders and fractions of the real data.

        Writes one JSONL per condition, a Hugging Face DatasetDict (`hf/`), a dataset card
        (`README.md`) and `manifest.json` with the config hash and a content fingerprint per split.
        Generation goes through a resumable cache: an interrupted build picks up where it stopped.

        Example: `regurg-bench build --out runs/splits/default` then `regurg-bench diagnose runs/splits/default`.
        """
        from rich.console import Console
        from rich.table import Table

        from regurg_bench.builders.build import build_splits
        from regurg_bench.builders.config import ConfigError, load_build_config
        from regurg_bench.builders.targets import make_target_generators

        console = Console()
        try:
            cfg = load_build_config(config)
            generators = make_target_generators(cfg, cache)
        except (ConfigError, ValueError) as exc:
            print_error(f"{exc}")
            raise typer.Exit(2) from None
        try:
            manifest = build_splits(cfg, out, generators, force=force)
        except (ValueError, NotImplementedError) as exc:
            print_error(f"{exc}")
            raise typer.Exit(2) from None
        finally:
            for gen in generators.values():
                gen.close()
        if manifest.get("up_to_date"):
            console.print(f"{out} is up to date (config {manifest['config_hash']}); use --force to rebuild")
        table = Table(title=f"{out}  config {manifest['config_hash'][:19]}…")
        for col in ("condition", "pairs", "generated", "fingerprint"):
            table.add_column(col, justify="right" if col in ("pairs", "generated") else "left")
        for name, c in manifest["conditions"].items():
            table.add_row(name, str(c["pairs"]), str(c["generated_pairs"]), c["fingerprint"][:23] + "…")
        console.print(table)
        for g, d in manifest["dropped_failed_generation"].items():
            if d["count"]:
                console.print(f"[yellow]{d['count']} sources dropped from every split: {g} failed on them[/yellow]")
