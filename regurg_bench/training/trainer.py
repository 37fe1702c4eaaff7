"""The training loop: from-scratch students, full or LoRA fine-tuning, curricula and unlearning.

Read top to bottom: :func:`train` sets up processes, data, model and optimizer, resumes from the last
checkpoint if there is one, runs the steps and writes the model plus its training card.

* **Prompt and loss.** Each pair becomes ``regurg_bench.prompt.render_example`` (the ``regurg_mt``
  task's prompt + " target\\n"); cross-entropy is taken on the completion tokens only, averaged over
  the completion tokens of the whole (global) batch. The output head runs only at those positions.
* **Order.** The batch schedule is fixed up front (shuffled with the seed, length-bucketed; or
  exactly the curriculum's order), so step ``k`` always sees the same ids. :class:`StepInfo` (via
  ``on_step``) and the card's ``order.sha256`` expose the ids consumed.
* **Unlearning (M4).** With a forget set, every step also takes a forget batch and minimises
  ``CE(replay) - lambda * min(CE(forget), bound)``, the replay being the split itself. Gradient
  ascent on the forget set alone diverges (CE -> infinity wrecks the model); the clamp switches the
  forgetting gradient off once the forget set is as unlikely as ``bound`` nats per token, by default
  ``ln(vocab)``, i.e. chance level, while the replay term keeps the loss on real data in place.
  The clamp is decided on the global (all-process) forget CE, so DDP matches one process.
* **Resume.** Checkpoints (trainable weights, optimizer, RNG, counters, loss curve) are written into
  a temporary folder and ``os.replace``-d to ``OUT/checkpoints/step-N``; re-running the same command
  continues from the newest one and gives the same weights as an uninterrupted run.
* **Scale-out.** Under ``torchrun --nproc_per_node K`` (or ``accelerate launch``) the model is
  wrapped in ``DistributedDataParallel`` (gloo on CPU, nccl on GPU) and each global batch is split
  across the processes; the loss normalisation makes the update equal to the one-process update.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from regurg_bench.atomic import atomic_folder
from regurg_bench.training.card import CARD_NAME, read_card, write_card
from regurg_bench.training.config import TrainConfig
from regurg_bench.training.data import (
    chain_hash,
    collate,
    encode_all,
    example_order,
    load_split,
    n_loss_tokens_of,
    plan_batches,
    steps_per_epoch,
)

if TYPE_CHECKING:
    from regurg_bench.models.base_models import BaseRecipe

log = logging.getLogger(__name__)

SCRATCH_PREFIX = "scratch:"
DEFAULT_LR = {"scratch": 3e-3, "full": 2e-5, "lora": 2e-4}


@dataclass
class StepInfo:
    """What one optimizer step consumed and measured (passed to ``on_step``; rank 0 only)."""

    step: int  # 1-based count of steps done
    ids: list[str]  # the global batch's pair ids, in order
    loss: float
    replay_ce: float
    forget_ce: float | None
    lr: float
    tokens: int  # input tokens so far (all processes)


@dataclass
class TrainState:
    """Counters that a checkpoint saves and a resumed run continues from."""

    step: int = 0
    tokens: int = 0
    target_tokens: int = 0
    elapsed_s: float = 0.0
    order_sha256: str = ""
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    segments: int = 0  # runs that contributed (1 + number of resumes)
    forget_eval_before: dict[str, float] | None = None


# --- processes ----------------------------------------------------------------------------------

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()


def setup_distributed() -> Dist:
    """One process, or the process group torchrun/accelerate describe in the environment."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if world > 1 and not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(device)
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    rank = torch.distributed.get_rank() if world > 1 else 0
    return Dist(rank, world, device)


# --- model --------------------------------------------------------------------------------------

@dataclass
class BaseModel:
    kind: str  # "scratch" | "hf"
    spec: str
    path: Path | None = None  # hf: the folder or hub id resolved
    preset: str | None = None


def resolve_base_model(spec: str) -> BaseModel:
    """``scratch:PRESET`` / a bare preset name, a local folder, an embedded model name, or a hub id."""
    from regurg_bench.models.scratch import PRESETS

    if spec.startswith(SCRATCH_PREFIX):
        preset = spec[len(SCRATCH_PREFIX):]
        if preset not in PRESETS:
            raise ValueError(f"unknown from-scratch preset {preset!r}; choose from {', '.join(PRESETS)}")
        return BaseModel("scratch", spec, preset=preset)
    if Path(spec).exists():
        return BaseModel("hf", spec, path=Path(spec).resolve())
    if spec in PRESETS:
        return BaseModel("scratch", spec, preset=spec)
    from regurg_bench.models.base_models import BASE_MODELS
    from regurg_bench.models.registry_models import embedded_model_names, embedded_model_path

    if spec in BASE_MODELS:  # built once from its recipe, at first use
        return BaseModel("hf", spec, path=base_model_path(spec))
    if spec in embedded_model_names():
        return BaseModel("hf", spec, path=embedded_model_path(spec))
    return BaseModel("hf", spec, path=Path(spec))  # a hub id: from_pretrained fetches it (if online)


# A recipe-built base model is itself a training run: building it is the trainer's job (train -> build -> train),
# the registry of recipes sits below in regurg_bench.models.base_models.
def build_base_model(recipe: BaseRecipe, out: Path, *, progress: bool = False) -> dict[str, Any]:
    """Train ``recipe`` into ``out`` (an empty or new folder) and write its card last; return the card."""
    from regurg_bench.models.base_models import recipe_training_settings, write_base_card

    train(TrainConfig(**recipe_training_settings(recipe), out=str(out), progress=progress))
    return write_base_card(recipe, out)


def base_model_path(name: str, *, progress: bool = True) -> Path:
    """A folder with the HF checkpoint of base model ``name``, built once (deterministically) at first use.

    A killed build resumes: training checkpoints live in a work folder beside the target that the
    next call continues from; the target appears only complete, with its card."""
    from regurg_bench.assets import file_lock
    from regurg_bench.models.base_models import base_model_dir, get_base_recipe, is_built

    recipe = get_base_recipe(name)
    target = base_model_dir(name)
    if is_built(name):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        if is_built(name):
            return target
        work = target.parent / f".{target.name}.part"  # stable name: the trainer resumes inside it
        print(f"regurg-bench: building base model {name} once ({recipe.max_steps} steps of "
              f"scratch:{recipe.preset} on {recipe.corpus}) -> {target}", file=sys.stderr, flush=True)
        build_base_model(recipe, work, progress=progress)
        if target.exists():
            shutil.rmtree(target)
        os.replace(work, target)
    return target


def resolve_model_spec(spec: str) -> Path | None:
    """A local folder for ``spec`` when it names a base model, an embedded model or an existing folder."""
    from regurg_bench.models.base_models import BASE_MODELS

    if spec in BASE_MODELS:
        return base_model_path(spec)
    from regurg_bench.models.registry_models import EMBEDDED_MODELS, embedded_model_path

    if spec in EMBEDDED_MODELS:
        return embedded_model_path(spec)
    return Path(spec) if Path(spec).exists() else None


def _prepare_scratch(base: BaseModel, texts: list[str], init_dir: Path, seed: int, dist: Dist) -> Path:
    """Tokenizer trained on the split + seeded initial weights, saved once (resume reuses them)."""
    from regurg_bench.models.scratch import get_preset, init_scratch_model, train_tokenizer

    if dist.main and not (init_dir / "config.json").is_file():
        with atomic_folder(init_dir, prefix=".init-") as tmp:
            tokenizer = train_tokenizer(texts, get_preset(base.preset).vocab_size)
            model = init_scratch_model(tokenizer, base.preset, seed)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    dist.barrier()
    return init_dir


def load_model(path: str | Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


def set_dropout(model: nn.Module, p: float) -> int:
    """Set every dropout site of ``model`` to ``p`` for training: ``nn.Dropout`` modules and the float
    ``attention_dropout`` that attention modules (Llama, Qwen, ...) pass to their kernel. Only the modules
    change, not ``model.config``, so the saved checkpoint keeps the base's setting. Returns the number of
    sites; an architecture with none is an error (the setting would silently do nothing)."""
    sites = 0
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = p
            sites += 1
        elif type(getattr(module, "attention_dropout", None)) in (int, float):
            module.attention_dropout = p
            sites += 1
    if not sites:
        raise ValueError(f"dropout={p}: {type(model).__name__} has no dropout site to set")
    return sites


class CompletionLoss(nn.Module):
    """Per-example summed cross-entropy on the completion tokens (labels != -100).

    One module (one ``forward``) so DDP sees a single forward per backward. The output head is applied
    only where there is a label: on a translation prompt that halves the head's cost.
    """

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm
        base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        # Models that transform logits after the head (soft-capping, scaling) take the plain path.
        plain = any(getattr(base.config, k, None) for k in ("final_logit_softcapping", "logit_scale"))
        self._decoder = None if plain else base.get_decoder()
        self._head = None if plain else base.get_output_embeddings()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor
                ) -> torch.Tensor:
        target = labels[:, 1:]
        where = target != -100
        if self._decoder is not None:
            hidden = self._decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = self._head(hidden[:, :-1][where])
        else:
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1][where]
        token_loss = F.cross_entropy(logits.float(), target[where], reduction="none")
        rows = where.nonzero()[:, 0]
        return torch.zeros(input_ids.shape[0], device=token_loss.device).index_add(0, rows, token_loss)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast where the hardware does bf16 matmuls natively (fp32 master weights either way)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolved_precision(precision: str) -> str:
    """``fp32`` or ``bf16``: what ``precision`` means on this machine (its first GPU, else its CPU)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "bf16" if use_bf16(precision, device) else "fp32"


def lr_at(step: int, total: int, warmup: int, peak: float, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``peak * min_ratio``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def trainable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


# --- checkpoints --------------------------------------------------------------------------------

def _checkpoints(out: Path) -> list[Path]:
    folder = out / "checkpoints"
    found = [p for p in folder.glob("step-*") if (p / "state.json").is_file()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def save_checkpoint(out: Path, model: nn.Module, optimizer: torch.optim.Optimizer, state: TrainState,
                    config: TrainConfig) -> Path:
    """Write everything a resume needs into a temporary folder, then ``os.replace`` it into place."""
    import json

    from safetensors.torch import save_file

    final = out / "checkpoints" / f"step-{state.step:08d}"
    # fsync: durable before it becomes visible under its final name
    with atomic_folder(final, prefix=".step-", fsync=True) as tmp:
        save_file({n: p.detach().contiguous() for n, p in trainable_parameters(model).items()},
                  tmp / "trainable.safetensors")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save({"torch": torch.get_rng_state()}, tmp / "rng.pt")
        payload = {"config_hash": config.semantic_hash(), **state.__dict__}
        (tmp / "state.json").write_text(json.dumps(payload), encoding="utf-8")
    for old in _checkpoints(out)[:-max(1, config.keep_checkpoints)]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    config: TrainConfig) -> TrainState:
    import json

    from safetensors.torch import load_file

    payload = json.loads((path / "state.json").read_text(encoding="utf-8"))
    if payload.pop("config_hash") != config.semantic_hash():
        raise RuntimeError(f"{path} belongs to a run with different settings; use another --out "
                           "or delete that folder")
    params = trainable_parameters(model)
    weights = load_file(path / "trainable.safetensors")
    if set(weights) != set(params):
        raise RuntimeError(f"{path}: checkpoint parameters do not match the model")
    with torch.no_grad():
        for name, tensor in weights.items():
            params[name].copy_(tensor)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    torch.set_rng_state(torch.load(path / "rng.pt", weights_only=True)["torch"])
    return TrainState(**payload)


def _clean_stale(out: Path) -> None:
    """Remove temporary folders a killed run left behind (never a complete checkpoint)."""
    for folder in (out, out / "checkpoints"):
        if folder.is_dir():
            for tmp in folder.glob(".*-*"):
                if tmp.is_dir():
                    shutil.rmtree(tmp, ignore_errors=True)


# --- evaluation of the unlearning terms ---------------------------------------------------------

@torch.no_grad()
def mean_completion_ce(loss_module: nn.Module, examples: list[tuple[list[int], int]], pad_id: int,
                       batch_size: int = 64) -> float:
    """Mean cross-entropy per completion token over ``examples`` (nats)."""
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        total += float(loss_module(*collate(chunk, pad_id)).sum())
        count += sum(n_loss_tokens_of(e) for e in chunk)
    return total / max(count, 1)


# --- the loop -----------------------------------------------------------------------------------

def train(config: TrainConfig, on_step: Callable[[StepInfo], None] | None = None) -> Path:
    """Train as ``config`` says and return the output folder (HF checkpoint + ``training_card.json``).

    Re-running with the same config resumes from the newest checkpoint in ``config.out``; a finished
    run is not repeated. Same seed, same thread count -> the same weights.
    """
    import torch.utils.deterministic

    saved = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Filling every new tensor costs 8x in step time on CPU and buys nothing: no kernel we run reads
    # uninitialised memory.
    torch.utils.deterministic.fill_uninitialized_memory = False
    bars = transformers_bars(config.progress)  # progress=False (a protocol run, with its own bar): no others
    try:
        return _train(config, on_step)
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])
        torch.utils.deterministic.fill_uninitialized_memory = saved[2]
        transformers_bars(bars)


def transformers_bars(enabled: bool) -> bool:
    """Show (or hide) transformers' own progress bars ("Loading weights", "Writing model shards"); returns
    whether they were shown before."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    return before


@dataclass
class _Run:
    """Everything :func:`_train` prepared once: data, schedule, model, optimizer (see :func:`_prepare`)."""

    config: TrainConfig
    out: Path
    dist: Dist
    split: Any
    forget: Any
    base: BaseModel
    method: str
    model_path: Path | str
    model: nn.Module
    tokenizer: Any
    attention: str | None
    pad_id: int
    examples: list
    forget_examples: list
    order_mode: str
    n_used: int
    total_steps: int
    schedule: list
    forget_schedule: list
    bound: float
    params: dict[str, nn.Parameter]
    peak_lr: float
    optimizer: torch.optim.Optimizer
    loss_module: nn.Module
    step_module: nn.Module
    bf16: bool
    warmup: int

    def forget_eval(self) -> dict[str, float]:
        """Mean completion CE on the forget set and on the first 256 replay examples."""
        eval_replay = [self.examples[i] for i in range(min(256, len(self.examples)))]
        with torch.autocast(self.dist.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return {"forget_ce": mean_completion_ce(self.loss_module, self.forget_examples, self.pad_id),
                    "replay_ce": mean_completion_ce(self.loss_module, eval_replay, self.pad_id)}


def _train(config: TrainConfig, on_step: Callable[[StepInfo], None] | None) -> Path:
    out = Path(config.out)
    dist = setup_distributed()
    finished = read_card(out)
    if finished is not None:
        if finished.get("config_hash") != config.semantic_hash():
            raise RuntimeError(f"{out} holds a finished run with different settings; choose another --out")
        log.info("%s: already trained (%s); nothing to do", out, CARD_NAME)
        return out
    run = _prepare(config, out, dist)
    state = TrainState()
    checkpoints = _checkpoints(out)
    if checkpoints:
        state = load_checkpoint(checkpoints[-1], run.model, run.optimizer, config)
        log.info("resuming from %s", checkpoints[-1])
    elif run.forget:
        state.forget_eval_before = run.forget_eval()
    state.segments += 1

    from tqdm.auto import tqdm

    total_steps = run.total_steps
    bar = tqdm(total=total_steps, initial=state.step, disable=not (config.progress and dist.main),
               desc=f"train {out.name}", unit="step", dynamic_ncols=True)
    stop_at = min(total_steps, config.stop_after_steps or total_steps)
    started, tokens_at_start = time.perf_counter(), state.tokens
    window: list[float] = []
    while state.step < stop_at:
        info = _step(run, state)
        window.append(info.loss)
        run_s = time.perf_counter() - started
        if dist.main and on_step is not None:
            on_step(info)
        if state.step % config.log_every == 0 or state.step == total_steps:
            point = {"step": state.step, "loss": sum(window) / len(window), "replay_ce": info.replay_ce,
                     "lr": info.lr, "tokens": state.tokens, "elapsed_s": round(state.elapsed_s + run_s, 3)}
            if run.forget:
                point["forget_ce"] = info.forget_ce
            state.loss_curve.append(point)
            window = []
        bar.set_postfix(loss=f"{info.loss:.3f}",
                        tok_s=f"{(state.tokens - tokens_at_start) / max(run_s, 1e-9):,.0f}", refresh=False)
        bar.update(1)
        checkpoint_due = config.checkpoint_every and state.step % config.checkpoint_every == 0
        if (checkpoint_due or state.step == stop_at) and state.step < total_steps:
            if dist.main:
                saved_elapsed = state.elapsed_s
                state.elapsed_s += time.perf_counter() - started
                save_checkpoint(out, run.model, run.optimizer, state, config)
                state.elapsed_s = saved_elapsed
            dist.barrier()
    bar.close()
    state.elapsed_s += time.perf_counter() - started
    if state.step < total_steps:  # stop_after_steps: checkpointed above, resume later
        return out
    if dist.main:
        _finish(run, state)
    dist.barrier()
    if dist.world > 1:
        torch.distributed.destroy_process_group()
    return out


def _prepare(config: TrainConfig, out: Path, dist: Dist) -> _Run:
    """Seed, read the data, plan every batch, load the model and build the optimizer (in that order:
    the order of seeded operations is part of the numbers the training tests pin)."""
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        _clean_stale(out)
    dist.barrier()

    # Data.
    split = load_split(config.split, config.src_lang, config.tgt_lang, config.max_pairs)
    forget = load_split(config.forget, config.src_lang, config.tgt_lang) if config.forget else None
    base = resolve_base_model(config.base_model)
    method = "scratch" if base.kind == "scratch" else config.method
    if base.kind == "scratch":
        texts = [t for p in split.pairs for t in (p.source, p.target)]
        model_path = _prepare_scratch(base, texts, out / "checkpoints" / "init", config.seed, dist)
    else:
        model_path = base.path
    model, tokenizer = load_model(model_path)
    if config.dropout is not None:
        set_dropout(model, config.dropout)
    attention = config.attention if config.attention != "auto" else ("eager" if dist.device.type == "cpu" else None)
    if attention:
        model.set_attn_implementation(attention)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    examples = encode_all(tokenizer, split.pairs, config.max_length)
    forget_examples = encode_all(tokenizer, forget.pairs, config.max_length) if forget else []
    order_mode, order = example_order(split, config.curriculum)
    n_used = len(order) if order is not None else len(examples)
    total_steps = config.max_steps or max(1, round(config.epochs * steps_per_epoch(n_used, config.batch_size)))
    lengths = [len(ids) for ids, _ in examples]
    schedule = plan_batches(len(examples), lengths, batch_size=config.batch_size, steps=total_steps,
                            seed=config.seed, order=order, bucketing=config.length_bucketing,
                            order_window=config.curriculum_window)
    forget_schedule = (plan_batches(len(forget_examples), [], batch_size=min(config.batch_size,
                                    len(forget_examples)), steps=total_steps, seed=config.seed + 1,
                                    order=None, bucketing=False) if forget else [])
    bound = config.forget_bound if config.forget_bound is not None else math.log(len(tokenizer))

    # Model and optimizer.
    if method == "lora":
        from regurg_bench.training.lora import wrap_lora

        model = wrap_lora(model, config)
    model.to(dist.device).train()
    params = trainable_parameters(model)
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    peak_lr = config.lr if config.lr is not None else DEFAULT_LR[method]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=peak_lr, betas=(0.9, 0.95), eps=1e-8)
    loss_module: nn.Module = CompletionLoss(model)
    if dist.world > 1:
        loss_module = nn.parallel.DistributedDataParallel(loss_module)
    step_module = torch.compile(loss_module, dynamic=True) if config.compile else loss_module
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, round(0.05 * total_steps))
    return _Run(config, out, dist, split, forget, base, method, model_path, model, tokenizer, attention, pad_id,
                examples, forget_examples, order_mode, n_used, total_steps, schedule, forget_schedule, bound,
                params, peak_lr, optimizer, loss_module, step_module, use_bf16(config.precision, dist.device),
                warmup)


def _step(run: _Run, state: TrainState) -> StepInfo:
    """One optimizer step on batch ``state.step`` of the schedule; advances ``state``."""
    config, dist, examples, forget_examples = run.config, run.dist, run.examples, run.forget_examples
    step = state.step
    batch = run.schedule[step]
    forget_batch = run.forget_schedule[step] if run.forget else []
    # This process' share of the global batch (a process with no share computes with weight 0).
    local = batch[dist.rank::dist.world]
    local_forget = forget_batch[dist.rank::dist.world]
    weight = 1.0 if local else 0.0
    chunk = [examples[i] for i in (local or batch[:1])] + [forget_examples[i] for i in local_forget]
    n_replay_local = len(local or batch[:1])
    n_replay = sum(n_loss_tokens_of(examples[i]) for i in batch)
    n_forget = sum(n_loss_tokens_of(forget_examples[i]) for i in forget_batch)
    input_ids, mask, labels = (t.to(dist.device) for t in collate(chunk, run.pad_id, config.pad_to_multiple_of))

    lr = lr_at(step, run.total_steps, run.warmup, run.peak_lr, config.min_lr_ratio)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    with torch.autocast(dist.device.type, dtype=torch.bfloat16, enabled=run.bf16):
        per_example = run.step_module(input_ids, mask, labels)
    replay_sum = per_example[:n_replay_local].sum() * weight
    forget_sum = per_example[n_replay_local:].sum()
    sums = torch.stack([replay_sum.detach(), forget_sum.detach()])
    if dist.world > 1:
        torch.distributed.all_reduce(sums)
    replay_ce = float(sums[0]) / n_replay
    forget_ce = float(sums[1]) / n_forget if run.forget else None
    # DDP averages gradients over processes, hence the factor world.
    loss = replay_sum / n_replay * dist.world
    if run.forget and forget_ce < run.bound:  # min(CE, bound): no forgetting gradient beyond the bound
        loss = loss - config.forget_weight * forget_sum / n_forget * dist.world
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip:
        torch.nn.utils.clip_grad_norm_(list(run.params.values()), config.grad_clip)
    run.optimizer.step()

    objective = replay_ce - (config.forget_weight * min(forget_ce, run.bound) if run.forget else 0.0)
    ids = [run.split.pairs[i].id for i in batch]
    state.step += 1
    state.tokens += sum(len(examples[i][0]) for i in batch) + sum(len(forget_examples[i][0])
                                                                  for i in forget_batch)
    state.target_tokens += n_replay
    state.order_sha256 = chain_hash(state.order_sha256, ids)
    return StepInfo(state.step, ids, objective, replay_ce, forget_ce, lr, state.tokens)


def _finish(run: _Run, state: TrainState) -> None:
    """Main process, after the last step: evaluate forgetting, save the model, write the card."""
    config, model, split, forget = run.config, run.model, run.split, run.forget
    summary: dict[str, Any] = {}
    if forget:
        model.eval()
        summary = {"before": state.forget_eval_before, "after": run.forget_eval()}
    _write_outputs(run.out, model, run.tokenizer, config, run.method)
    card = {
        "config": config.to_dict(),
        "config_hash": config.semantic_hash(),
        "base_model": {"spec": run.base.spec, "kind": run.base.kind, "preset": run.base.preset,
                       "path": None if run.base.kind == "scratch" else str(run.model_path)},
        "method": run.method,
        "split": {"spec": config.split, "fingerprint": split.fingerprint,
                  "declared_fingerprint": split.declared_fingerprint, "pairs": len(split.pairs),
                  "provenance": split.provenance},
        "order": {"mode": run.order_mode, "sha256": state.order_sha256, "pairs_used": run.n_used,
                  "first_ids": [split.pairs[i].id for i in run.schedule[0][:5]]},
        "steps": state.step,
        "epochs": state.step * config.batch_size / run.n_used,
        "tokens": state.tokens,
        "target_tokens": state.target_tokens,
        "wall_time_s": round(state.elapsed_s, 3),
        "tokens_per_s": round(state.tokens / max(state.elapsed_s, 1e-9), 1),
        "segments": state.segments,
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in run.params.values()),
        "precision": "bf16-autocast" if run.bf16 else "fp32",
        "compile": config.compile,
        "attention": model.config._attn_implementation if run.method != "lora" else run.attention,
        "world_size": run.dist.world,
        "device": str(run.dist.device),
        "threads": torch.get_num_threads(),
        "lr": run.peak_lr,
        "warmup_steps": run.warmup,
        "loss_curve": state.loss_curve,
        "final_loss": state.loss_curve[-1]["loss"] if state.loss_curve else None,
    }
    if forget:
        card["unlearning"] = {"objective": "CE(replay) - lambda * min(CE(forget), bound)",
                              "lambda": config.forget_weight, "bound": run.bound,
                              "forget_spec": config.forget, "forget_pairs": len(forget.pairs),
                              "forget_fingerprint": forget.fingerprint, **summary}
    write_card(run.out, card)
    shutil.rmtree(run.out / "checkpoints", ignore_errors=True)


def _write_outputs(out: Path, model: nn.Module, tokenizer, config: TrainConfig, method: str) -> None:
    """Save the model (or the LoRA adapter) into a temporary folder, then move each file into ``out``."""
    model.eval()
    tmp = Path(tempfile.mkdtemp(dir=out, prefix=".final-"))
    model.save_pretrained(tmp)  # a PeftModel saves the adapter only (adapter_config.json + weights)
    tokenizer.save_pretrained(tmp)
    for path in tmp.iterdir():
        os.replace(path, out / path.name)
    tmp.rmdir()
    if method == "lora" and config.merge_lora:
        from regurg_bench.training.lora import save_merged

        with atomic_folder(out / "merged", prefix=".merged-") as merged_tmp:
            save_merged(model, tokenizer, merged_tmp)
