"""Train or fine-tune a causal LM on a split: from-scratch students, full/LoRA fine-tuning, curricula,
unlearning; resumable, deterministic, DDP-ready. Entry points: :func:`train` and ``regurg-bench train``.

``train`` and ``StepInfo`` are loaded on first access, so that importing the package (the CLI does,
to register its command) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from regurg_bench.training.config import TrainConfig

if TYPE_CHECKING:
    from regurg_bench.training.trainer import StepInfo, train

__all__ = ["StepInfo", "TrainConfig", "train"]


def __getattr__(name: str) -> Any:
    if name in ("StepInfo", "train"):
        from regurg_bench.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
