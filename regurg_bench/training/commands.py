"""``regurg-bench train``: the command-line face of :func:`regurg_bench.training.train`.

Also runnable on its own, which is how multi-process runs start::

    torchrun --nproc_per_node 2 -m regurg_bench.training.commands train --split ... --out ...
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

TRAIN_HELP = """Train a student from scratch, or fine-tune a causal LM (full or LoRA), on a split.

The prompt is exactly the `regurg_mt` task's (`English: ...\\nSpanish:` + ` target\\n`), with the
loss on the target tokens only, so the result is ready for `regurg-bench eval` / `lm_eval --model hf
--model_args pretrained=OUT`. OUT gets an HF checkpoint (safetensors) and `training_card.json`
(config, split fingerprint, data-order hash, steps, tokens, wall time, loss curve).

**Examples**

`regurg-bench train --split bible:en-es:train --max-pairs 3000 --out runs/real-student`
(a ~2M-parameter student from scratch, the CPU default `scratch:tiny`)

`regurg-bench train --split splits/apertium-50 --base-model smollm2-135m-instruct --method lora --out runs/lora`

`regurg-bench train --split splits/real --curriculum order.txt --out runs/cur` (exact given order;
add `--curriculum-window 8` to keep it per 8 batches with less padding)

`regurg-bench train --split splits/real --base-model runs/student --forget synthetic.jsonl --out runs/unlearned`

`torchrun --nproc_per_node 2 -m regurg_bench.training.commands train --split ... --out ...` (DDP)

Interrupted? Run the same command again: it continues from the last checkpoint in OUT.
"""


def train_command(
    split: Annotated[str, typer.Option("--split", help="A split folder (with train.jsonl), a .jsonl file, "
                                       "or a corpus spec such as `bible:en-es:train`.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder (checkpoints live here too).")],
    base_model: Annotated[str, typer.Option("--base-model", "-m", help="`scratch:PRESET` (test, tiny, small, "
                                            "base), a local HF folder, an embedded model name or a hub id.")
                          ] = "scratch:tiny",
    method: Annotated[str, typer.Option(help="`full` or `lora` (fine-tuning only).")] = "full",
    epochs: Annotated[float, typer.Option(help="Passes over the split.")] = 1.0,
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = None,
    batch_size: Annotated[int, typer.Option(help="Pairs per step, over all processes.")] = 32,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 3e-3 scratch, 2e-5 full, "
                                             "2e-4 LoRA).")] = None,
    seed: Annotated[int, typer.Option(help="Seeds initialisation and data order.")] = 0,
    max_pairs: Annotated[int | None, typer.Option(help="Use only the first N pairs of the split.")] = None,
    curriculum: Annotated[str | None, typer.Option(help="A .txt/.jsonl of ids: train in this order.")
                          ] = None,
    curriculum_window: Annotated[int, typer.Option(min=0, help="Keep the --curriculum order per window of N "
                                                   "batches, length-sorted inside (less padding); 0 = exact "
                                                   "order.")] = 0,
    forget: Annotated[str | None, typer.Option(help="Pairs to unlearn (.jsonl or corpus spec); the split "
                                               "is replayed.")] = None,
    forget_weight: Annotated[float, typer.Option(help="Lambda of the forgetting term.")] = 1.0,
    forget_bound: Annotated[float | None, typer.Option(help="Bound on the forget CE in nats/token "
                                                       "(default ln(vocab)).")] = None,
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = 8,
    merge_lora: Annotated[bool, typer.Option(help="Also write the merged model to OUT/merged.")] = False,
    src_lang: Annotated[str | None, typer.Option("--src-lang", "-s", help="For splits without language fields.")
                        ] = None,
    tgt_lang: Annotated[str | None, typer.Option("--tgt-lang", "-t")] = None,
    precision: Annotated[str, typer.Option(help="`auto` (bf16 autocast where the CPU/GPU has bf16), `bf16`, "
                                           "`fp32`.")] = "auto",
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: never).")] = 50,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = True,
) -> None:
    from pydantic import ValidationError

    from regurg_bench.training import train
    from regurg_bench.training.config import validate_train_config

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if method not in ("full", "lora"):
        raise typer.BadParameter("must be `full` or `lora`", param_hint="--method")
    if precision not in ("auto", "bf16", "fp32"):
        raise typer.BadParameter("must be `auto`, `bf16` or `fp32`", param_hint="--precision")
    try:  # the same typed model as the protocol's `train:` overrides
        config = validate_train_config(dict(
            split=split, out=out, base_model=base_model, method=method, epochs=epochs, max_steps=max_steps,
            batch_size=batch_size, lr=lr, seed=seed, max_pairs=max_pairs, curriculum=curriculum,
            curriculum_window=curriculum_window, forget=forget, forget_weight=forget_weight, forget_bound=forget_bound,
            lora_r=lora_r, lora_alpha=2 * lora_r, merge_lora=merge_lora, src_lang=src_lang, tgt_lang=tgt_lang,
            precision=precision, compile=compile_model, checkpoint_every=checkpoint_every, num_threads=threads,
            progress=progress))
    except ValidationError as err:
        problems = "; ".join(f"--{'-'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in err.errors())
        raise typer.BadParameter(problems) from None
    path = train(config)
    typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to ``app``."""
    app.command("train", help=TRAIN_HELP, context_settings={"help_option_names": ["-h", "--help"]})(train_command)


def _standalone() -> typer.Typer:
    app = typer.Typer(rich_markup_mode="markdown", pretty_exceptions_enable=False, no_args_is_help=True)

    @app.callback()
    def _root() -> None:
        """regurg-bench training (standalone entry point for torchrun)."""

    register(app)
    return app


if __name__ == "__main__":
    _standalone()()
