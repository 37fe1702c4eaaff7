"""``regurg-bench generate``: write generated targets for a corpus, through the generation cache."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import typer

from regurg_bench.console import print_error
from regurg_bench.generation.base import GENERATORS  # help lists (typer reads annotations at module level)


def parse_options(items: list[str]) -> dict:
    """``["model=/ckpt", "max_new_tokens=64", "engine_kwargs={\\"enforce_eager\\": true}"]`` -> dict.
    Values are JSON when they parse as JSON, else plain strings."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"option {item!r} is not KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate(
        spec: Annotated[str, typer.Argument(help="Corpus spec, e.g. `bible:en-es:train` or `data.tsv`.")],
        generator: Annotated[str, typer.Option(
            "--generator", "-g", help=f"Generator kind: {GENERATORS.help_list()}.")],
        option: Annotated[list[str] | None, typer.Option(
            "--option", "-O", help="Generator option KEY=VALUE (repeatable; JSON values allowed), e.g. "
                                   "`-O model=runs/teacher -O max_new_tokens=64`.")] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="JSONL of generated targets.")] = None,
        cache: Annotated[Path | None, typer.Option(
            "--cache", help="Generation cache folder (default: ~/.cache/regurg_bench/generations).")] = None,
        limit: Annotated[int | None, typer.Option("--limit", "-n", help="First N pairs only.")] = None,
        batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Sources per generator call.")] = 32,
        max_attempts: Annotated[int, typer.Option(help="Tries per source before a failure is final.")] = 3,
        src_lang: Annotated[str | None, typer.Option("--src-lang", "-s", help="Source language (local formats).")] = None,
        tgt_lang: Annotated[str | None, typer.Option("--tgt-lang", "-t", help="Target language (local formats).")] = None,
        no_header: Annotated[bool, typer.Option(
            "--no-header", help="TSV corpora: no header line (rows are source, target or id, source, target).")] = False,
    ) -> None:
        """Translate a corpus's sources with one generator; cached, resumable, with a progress bar.

        Each output row: `id`, `source`, `target` (generated; null when generation failed or was
        empty), `reference` (the corpus target), `status`, `reason`, `generator_signature`. Killing the
        command and running it again resumes from the cache; failed sources are retried up to
        `--max-attempts` times and listed at the end, never written as targets.

        Example: `regurg-bench generate bible:en-es:train -g apertium -n 1000 -o apertium.jsonl`.
        """
        from itertools import islice

        from rich.console import Console

        from regurg_bench.assets import cache_dir
        from regurg_bench.atomic import atomic_write
        from regurg_bench.corpora import CorpusError
        from regurg_bench.corpora.spec import corpus_from_spec, header_options
        from regurg_bench.generation.base import GenerationError, build_generator
        from regurg_bench.generation.cache import GenerationCache
        from regurg_bench.generation.runner import GenerationStats, generate_targets

        console = Console()
        try:
            source = corpus_from_spec(spec, src_lang, tgt_lang, **header_options(spec, src_lang, no_header))
            gen = build_generator(generator, **parse_options(option or []))
        except (CorpusError, KeyError, ValueError, TypeError) as exc:
            print_error(f"{exc}")
            raise typer.Exit(2) from None
        pairs = source.iter_pairs()
        if limit is not None:
            pairs = islice(pairs, limit)
        stats = GenerationStats()
        signature = gen.signature()
        store = GenerationCache(cache or cache_dir() / "generations", max_attempts=max_attempts)
        with contextlib.ExitStack() as stack:
            stack.callback(store.close)
            stack.callback(gen.close)
            # Written to a temporary file and moved into place at the end: never a half file under --out.
            handle = stack.enter_context(atomic_write(out)) if out else None
            try:
                for pair, result in generate_targets(gen, pairs, store, batch_size=batch_size, total=limit,
                                                     stats=stats):
                    if handle is not None:
                        handle.write(json.dumps({"id": pair.id, "source": pair.source, "target": result.target,
                                                 "reference": pair.target, "status": result.status,
                                                 "reason": result.reason, "generator_signature": signature.hash},
                                                ensure_ascii=False) + "\n")
            except (GenerationError, CorpusError, ValueError) as exc:
                print_error(f"{exc}")
                raise typer.Exit(2) from None
        console.print(f"{stats.pairs} pairs: {stats.cached} from cache, {stats.generated} generated "
                      f"({stats.pairs_per_second:.1f} pairs/s, {stats.tokens_per_second:.0f} tokens/s); "
                      f"{stats.ok} ok, {stats.empty} empty, {stats.failed} failed")
        console.print(f"generator {signature.short()}")
        summary = store.summary(signature)
        if summary.failed or summary.empty:
            console.print(f"[yellow]cache: {summary.failed} failed and {summary.empty} empty sources "
                          f"({summary.exhausted} will not be retried): {dict(summary.reasons)}[/yellow]")
        if out:
            console.print(f"wrote {out}")
