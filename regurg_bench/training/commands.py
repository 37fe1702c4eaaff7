"""``regurg-bench train``: the command-line face of :func:`regurg_bench.training.train`.

Also runnable on its own, which is how multi-process runs start::

    torchrun --nproc_per_node 2 -m regurg_bench.training.commands train --split ... --out ...
"""

from __future__ import annotations

import logging
from dataclasses import MISSING, fields
from typing import Annotated, Any

import typer

from regurg_bench.training.config import TrainConfig

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


#: TrainConfig's defaults: the CLI's defaults are read from here, never typed twice.
_D = {f.name: f.default for f in fields(TrainConfig) if f.default is not MISSING}
#: CLI parameter -> TrainConfig field, where the names differ.
RENAMED = {"compile_model": "compile", "threads": "num_threads"}
#: CLI parameters whose default is derived, not TrainConfig's: ``--lora-alpha`` defaults to 2 x rank.
DERIVED = {"lora_alpha": "2 x --lora-r"}


def config_from_options(options: dict[str, Any]) -> TrainConfig:
    """The :class:`TrainConfig` of ``train``'s parameters (named as the CLI names them), validated by the same
    typed model as the protocol's ``train:`` overrides; a bad value is a ``typer.BadParameter`` naming the flag."""
    from pydantic import ValidationError

    from regurg_bench.training.config import validate_train_config

    settings = {RENAMED.get(name, name): value for name, value in options.items()}
    if settings["lora_alpha"] is None:
        settings["lora_alpha"] = 2 * settings["lora_r"]
    try:
        return validate_train_config(settings)
    except ValidationError as err:
        flag = {field: name for name, field in RENAMED.items()}
        problems = "; ".join(f"--{flag.get(str(e['loc'][0]), str(e['loc'][0])).replace('_', '-')}: {e['msg']}"
                             for e in err.errors())
        raise typer.BadParameter(problems) from None


def train_command(
    split: Annotated[str, typer.Option("--split", help="A split folder (with train.jsonl), a .jsonl file, "
                                       "or a corpus spec such as `bible:en-es:train`.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder (checkpoints live here too).")],
    base_model: Annotated[str, typer.Option("--base-model", "-m", help="`scratch:PRESET` (test, tiny, small, "
                                            "base), a local HF folder, an embedded model name or a hub id.")
                          ] = _D["base_model"],
    src_lang: Annotated[str | None, typer.Option("--src-lang", "-s", help="For splits without language fields.")
                        ] = _D["src_lang"],
    tgt_lang: Annotated[str | None, typer.Option("--tgt-lang", "-t")] = _D["tgt_lang"],
    method: Annotated[str, typer.Option(help="`full` or `lora` (fine-tuning only).")] = _D["method"],
    lr: Annotated[float | None, typer.Option(help="Peak learning rate (default 3e-3 scratch, 2e-5 full, "
                                             "2e-4 LoRA).")] = _D["lr"],
    epochs: Annotated[float, typer.Option(help="Passes over the split.")] = _D["epochs"],
    max_steps: Annotated[int | None, typer.Option(help="Optimizer steps (overrides --epochs).")] = _D["max_steps"],
    batch_size: Annotated[int, typer.Option(help="Pairs per step, over all processes.")] = _D["batch_size"],
    warmup_steps: Annotated[int | None, typer.Option(help="Warm-up steps (default: 5% of the steps).")
                            ] = _D["warmup_steps"],
    min_lr_ratio: Annotated[float, typer.Option(help="Cosine decay ends at lr x this.")] = _D["min_lr_ratio"],
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (matrices only).")] = _D["weight_decay"],
    grad_clip: Annotated[float, typer.Option(help="Gradient-norm clip.")] = _D["grad_clip"],
    max_length: Annotated[int, typer.Option(help="Prompt + completion tokens; longer examples are cut from "
                                            "the left.")] = _D["max_length"],
    seed: Annotated[int, typer.Option(help="Seeds initialisation and data order.")] = _D["seed"],
    max_pairs: Annotated[int | None, typer.Option(help="Use only the first N pairs of the split.")] = _D["max_pairs"],
    curriculum: Annotated[str | None, typer.Option(help="A .txt/.jsonl of ids: train in this order.")
                          ] = _D["curriculum"],
    length_bucketing: Annotated[bool, typer.Option(help="Shuffled order: group similar lengths (less padding).")
                                ] = _D["length_bucketing"],
    curriculum_window: Annotated[int, typer.Option(min=0, help="Keep the --curriculum order per window of N "
                                                   "batches, length-sorted inside (less padding); 0 = exact "
                                                   "order.")] = _D["curriculum_window"],
    dropout: Annotated[float | None, typer.Option(help="Dropout put on every dropout site of the model while "
                                                  "training (Llama: attention dropout), seeded by --seed; "
                                                  "default: the checkpoint's own. The saved config keeps the "
                                                  "checkpoint's value.")] = _D["dropout"],
    lora_r: Annotated[int, typer.Option(help="LoRA rank.")] = _D["lora_r"],
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default: 2 x rank).")] = None,
    lora_dropout: Annotated[float, typer.Option(help="LoRA dropout.")] = _D["lora_dropout"],
    lora_target_modules: Annotated[str, typer.Option(help="LoRA target modules (peft's names).")
                                   ] = _D["lora_target_modules"],
    merge_lora: Annotated[bool, typer.Option(help="Also write the merged model to OUT/merged.")] = _D["merge_lora"],
    forget: Annotated[str | None, typer.Option(help="Pairs to unlearn (.jsonl or corpus spec); the split "
                                               "is replayed.")] = _D["forget"],
    forget_weight: Annotated[float, typer.Option(help="Lambda of the forgetting term.")] = _D["forget_weight"],
    forget_bound: Annotated[float | None, typer.Option(help="Bound on the forget CE in nats/token "
                                                       "(default ln(vocab)).")] = _D["forget_bound"],
    precision: Annotated[str, typer.Option(help="`auto` (bf16 autocast where the CPU/GPU has bf16), `bf16`, "
                                           "`fp32`.")] = _D["precision"],
    compile_model: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = _D["compile"],
    attention: Annotated[str, typer.Option(help="`auto` (eager on CPU, the model's default on GPU), `eager`, "
                                           "`sdpa`.")] = _D["attention"],
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = _D["num_threads"],
    pad_to_multiple_of: Annotated[int, typer.Option(help="Pad batches to a multiple of N tokens.")
                                  ] = _D["pad_to_multiple_of"],
    checkpoint_every: Annotated[int, typer.Option(help="Checkpoint every N steps (0: never).")
                                ] = _D["checkpoint_every"],
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints kept in OUT.")] = _D["keep_checkpoints"],
    log_every: Annotated[int, typer.Option(help="Loss-curve point every N steps.")] = _D["log_every"],
    progress: Annotated[bool, typer.Option(help="Show the progress bar.")] = _D["progress"],
    stop_after_steps: Annotated[int | None, typer.Option(help="Stop (checkpointed) after N steps; run again "
                                                         "to continue.")] = _D["stop_after_steps"],
) -> None:
    options = dict(locals())  # every parameter, named as the CLI names it
    from regurg_bench.training import train

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = train(config_from_options(options))
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
