"""``TrainConfig``: every setting of a training run, as plain overridable fields (nanoGPT style)."""

from __future__ import annotations

import re
from dataclasses import MISSING, asdict, dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_type_hints

from regurg_bench.hashing import config_hash

#: Fields that do not change the trained weights; a resumed run may change them freely.
NON_SEMANTIC_FIELDS = frozenset({"out", "progress", "log_every", "checkpoint_every", "keep_checkpoints",
                                 "num_threads", "merge_lora", "stop_after_steps"})
#: Fields added after checkpoints and keys were published: hashed only when set (not None), so the hash of
#: every config that leaves them unset is what it was before they existed.
HASHED_WHEN_SET = frozenset({"dropout"})


@dataclass
class TrainConfig:
    """One training run. Only ``split`` and ``out`` are required.

    ``base_model`` is a from-scratch preset (``scratch:tiny``, or the bare preset name), a local HF
    checkpoint folder, an embedded model name (``smollm2-135m-instruct``) or a hub id.
    """

    split: str
    out: str
    base_model: str = "scratch:tiny"
    src_lang: str | None = None  # only for corpus specs of local formats without language fields
    tgt_lang: str | None = None
    method: Literal["full", "lora"] = "full"  # from-scratch models are always trained in full
    # Optimisation. lr=None picks 3e-3 from scratch, 2e-5 full fine-tuning, 2e-4 LoRA.
    lr: float | None = None
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs
    batch_size: int = 32  # pairs per optimizer step, over all processes
    warmup_steps: int | None = None  # default: 5% of the steps
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    max_length: int = 256  # prompt + completion tokens; longer examples are cut from the left
    seed: int = 0
    max_pairs: int | None = None  # use only the first N pairs of the split (quick runs)
    # Data order: shuffled with ``seed`` unless a curriculum file (ids in order) is given, or every
    # row carries a ``curriculum_rank``/``order`` field.
    curriculum: str | None = None
    length_bucketing: bool = True  # shuffled order only: group similar lengths to cut padding
    # Given order only: keep it per window of this many batches, length-sorted inside (0 or 1 = exact
    # order, every batch padded to its own longest example). 8 cut the default's curriculum students
    # from ~83 s to 53-59 s on 2 CPU cores (shuffled students: ~50 s).
    curriculum_window: int = 0
    # Dropout probability put on every dropout site of the architecture while training (Llama: the attention
    # dropout); None keeps the checkpoint's own (usually 0). Seeded by ``seed``, it makes each seed a distinct
    # replicate for every student, curriculum students included (their order is fixed, so without it the seed
    # changes nothing). The saved config keeps the checkpoint's value: evaluation never drops out.
    dropout: float | None = None
    # LoRA (method="lora").
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_target_modules: str = "all-linear"
    merge_lora: bool = False  # also write the merged full model to OUT/merged
    # Unlearning (M4): forget set + replay of the split; see regurg_bench.training.trainer.
    forget: str | None = None
    forget_weight: float = 1.0  # lambda
    forget_bound: float | None = None  # nats/token; None = ln(vocab size), i.e. chance level
    # Speed.
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # bf16 = autocast, fp32 master weights
    compile: bool = False
    # "auto": eager attention on CPU (5x faster than SDPA with a padding mask at these sizes, measured
    # in benchmarks/train_speed.py), the model's default (SDPA/flash) on GPU.
    attention: Literal["auto", "eager", "sdpa"] = "auto"
    num_threads: int | None = None
    pad_to_multiple_of: int = 8
    # Bookkeeping.
    checkpoint_every: int = 50  # steps; 0 = only at the end
    keep_checkpoints: int = 1
    log_every: int = 10
    progress: bool = True
    stop_after_steps: int | None = None  # stop (checkpointed) after this many steps: tests, time slicing

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig fields: {unknown}")
        return cls(**data)

    def semantic_hash(self) -> str:
        """Hash of the fields that determine the weights: a checkpoint only resumes the same run."""
        return config_hash({k: v for k, v in self.to_dict().items()
                            if k not in NON_SEMANTIC_FIELDS and not (k in HASHED_WHEN_SET and v is None)})


# --- validation: one typed model for `regurg-bench train` and the protocol's `train:` overrides ------

#: Bounds the dataclass cannot express; checked by :func:`validate_train_config`.
_BOUNDS: dict[str, dict[str, float]] = {
    "max_steps": {"gt": 0}, "batch_size": {"gt": 0}, "epochs": {"gt": 0}, "lr": {"gt": 0},
    "warmup_steps": {"ge": 0}, "max_length": {"gt": 0}, "max_pairs": {"gt": 0}, "curriculum_window": {"ge": 0},
    "lora_r": {"gt": 0}, "lora_alpha": {"gt": 0}, "checkpoint_every": {"ge": 0}, "keep_checkpoints": {"ge": 1},
    "log_every": {"gt": 0}, "num_threads": {"gt": 0}, "pad_to_multiple_of": {"gt": 0}, "stop_after_steps": {"gt": 0},
    "min_lr_ratio": {"ge": 0, "le": 1}, "weight_decay": {"ge": 0}, "grad_clip": {"gt": 0},
    "lora_dropout": {"ge": 0, "lt": 1}, "dropout": {"ge": 0, "lt": 1}, "forget_weight": {"ge": 0}, "forget_bound": {"gt": 0},
}


@cache
def train_settings_model() -> type:
    """A strict pydantic model of :class:`TrainConfig`'s fields (types from its annotations, plus bounds):
    ``max_steps: three`` or ``batch_size: true`` is an error naming the field, not a crash mid-run."""
    from pydantic import ConfigDict, Field, create_model

    hints = get_type_hints(TrainConfig)
    spec: dict[str, Any] = {}
    for f in fields(TrainConfig):
        default = ... if f.default is MISSING else f.default
        spec[f.name] = (hints[f.name], Field(default, **_BOUNDS.get(f.name, {})))
    return create_model("TrainSettings", __config__=ConfigDict(extra="forbid", strict=True), **spec)


def validate_train_config(data: dict[str, Any]) -> TrainConfig:
    """``TrainConfig(**data)`` after type and bound checks; raises pydantic's ``ValidationError``."""
    settings = train_settings_model().model_validate(data)
    return TrainConfig(**settings.model_dump())


def train_config_problems(data: dict[str, Any], prefix: str = "") -> list[str]:
    """Every problem of ``data`` as ``<prefix><field>: <why>`` (empty when it validates)."""
    from pydantic import ValidationError

    try:
        validate_train_config(data)
    except ValidationError as err:
        return [f"{prefix}{'.'.join(map(str, e['loc']))}: "
                + ("unknown key (not a TrainConfig field)" if e["type"] == "extra_forbidden" else e["msg"])
                + (f" (got {e['input']!r})" if e["type"] not in ("extra_forbidden", "missing") else "")
                for e in err.errors()]
    return []


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def base_model_problem(spec: str) -> str | None:
    """Why ``spec`` names no base model the trainer can load (None when it does), without loading or
    building anything: ``scratch:PRESET`` (or a bare preset), a recipe-built base model
    (``bible-base-en-es``), an embedded registry model, a local checkpoint folder, or a hub id (``org/name``)."""
    from regurg_bench.models.base_models import BASE_MODELS
    from regurg_bench.models.registry_models import embedded_model_names
    from regurg_bench.models.scratch import PRESETS

    if spec.startswith("scratch:"):
        preset = spec.removeprefix("scratch:")
        return None if preset in PRESETS else (f"unknown from-scratch preset {preset!r}; choose from "
                                               f"{', '.join('scratch:' + p for p in PRESETS)}")
    if spec in PRESETS or spec in BASE_MODELS or spec in embedded_model_names():
        return None
    path = Path(spec).expanduser()
    if path.exists():
        return None if path.is_dir() else f"{spec} is not a checkpoint folder"
    if _HUB_ID.match(spec) and not spec.startswith((".", "/", "~")):
        return None  # a hub id: only loadable online, which is the user's call
    return (f"unknown base model {spec!r}: not a scratch:PRESET ({', '.join(PRESETS)}), an embedded model "
            f"({', '.join(sorted([*BASE_MODELS, *embedded_model_names()]))}), an existing folder or a hub id")
