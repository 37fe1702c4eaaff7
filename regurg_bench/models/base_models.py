"""Embedded base models the project trains itself: a pretrained checkpoint every default student fine-tunes.

The paper fine-tunes a *pretrained* model on real vs regurgitated data. No pretrained translation model
reaches this machine through a package registry, so the embedded default pretrains its own: a small
Llama trained from scratch on the real pairs of the Old Testament books of the embedded Bible corpus
(``bible:en-es:train-ot``). The protocol's students then fine-tune it on New Testament sources
(``bible:en-es:train-nt``), which the base never saw, and are tested on Acts (never in either).

A recipe is a frozen value object: corpus, model size, steps, batch, learning rate, seed, threads and
precision. Its hash names the cache folder, so a changed recipe is a new model, never a silently reused
one. The build is deterministic (same recipe and torch build -> the same weights, bit for bit: the
trainer is deterministic at a fixed thread count, and the recipe pins it) and atomic: it trains into a
temporary folder beside the target under an exclusive lock, writes the card (recipe, fingerprints of
the weights and tokenizer, the training card) last, then ``os.replace``-s the folder into place.

This module is the registry (recipes, where a build lives, its card). The build itself trains, so it lives
with the trainer (:func:`regurg_bench.training.trainer.base_model_path`), which resolves a recipe name to a
checkpoint: the trainer reads this registry, and this registry imports nothing of the trainer.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regurg_bench.assets import cache_dir, sha256_file

CARD_NAME = "regurg_bench_base_model.json"
#: Bump when the way a recipe becomes a checkpoint changes (a new folder name follows).
RECIPE_VERSION = 1


@dataclass(frozen=True)
class BaseRecipe:
    """How an embedded base model is built (every field changes the weights)."""

    corpus: str  # a corpus spec the trainer reads (its real pairs)
    preset: str  # regurg_bench.models.scratch preset
    max_steps: int
    batch_size: int
    lr: float
    seed: int = 0
    num_threads: int = 2  # pinned: the trainer is bit-identical at a fixed thread count
    precision: str = "fp32"  # pinned: bf16 autocast gives other numbers (and is emulated on AVX2-only CPUs)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"recipe_version": RECIPE_VERSION}

    def digest(self) -> str:
        body = {k: v for k, v in self.to_dict().items() if k != "description"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()

    def train_tokens_estimate(self, tokens_per_pair: float = 80.0) -> float:
        return self.max_steps * self.batch_size * tokens_per_pair


BASE_MODELS: dict[str, BaseRecipe] = {
    "bible-base-en-es": BaseRecipe(
        corpus="bible:en-es:train-ot", preset="tiny", max_steps=600, batch_size=32, lr=3e-3,
        description="English->Spanish Llama (~1.6M parameters, 4k BPE vocabulary) pretrained from scratch on "
                    "the Old Testament pairs of the embedded Bible (WEB -> Reina-Valera 1909; 23,012 pairs, "
                    "600 steps x 32 pairs). The base every student of the embedded default fine-tunes."),
}


def base_model_names() -> list[str]:
    return sorted(BASE_MODELS)


def get_base_recipe(name: str) -> BaseRecipe:
    try:
        return BASE_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown base model {name!r}; known: {', '.join(base_model_names())}") from None


def base_model_dir(name: str) -> Path:
    """Where base model ``name`` lives in the cache (it may not be built yet)."""
    return cache_dir() / "models" / f"{name}-{get_base_recipe(name).digest()[:12]}"


def _card(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / CARD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _weights_fingerprint(folder: Path) -> dict[str, str]:
    files = sorted(p for p in folder.iterdir() if p.suffix == ".safetensors" or p.name == "tokenizer.json")
    return {p.name: "sha256:" + sha256_file(p) for p in files}


def base_model_card(name: str) -> dict[str, Any] | None:
    """The card of a built base model (recipe, fingerprints), or None when it is not built."""
    return _card(base_model_dir(name))


def is_built(name: str) -> bool:
    card = _card(base_model_dir(name))
    return card is not None and card.get("recipe_digest") == get_base_recipe(name).digest()


def recipe_training_settings(recipe: BaseRecipe) -> dict[str, Any]:
    """The trainer settings (``TrainConfig`` fields, less ``out`` and ``progress``) that build ``recipe``."""
    return {"split": recipe.corpus, "base_model": f"scratch:{recipe.preset}", "max_steps": recipe.max_steps,
            "batch_size": recipe.batch_size, "lr": recipe.lr, "seed": recipe.seed, "num_threads": recipe.num_threads,
            "precision": recipe.precision, "checkpoint_every": 100, "log_every": 50}


def write_base_card(recipe: BaseRecipe, folder: Path) -> dict[str, Any]:
    """Write the card of ``recipe`` trained into ``folder`` (recipe, fingerprints, the training card's numbers),
    atomically and last: a folder with a card is a complete base model. Returns the card."""
    training = json.loads((folder / "training_card.json").read_text(encoding="utf-8"))
    card = {"recipe": recipe.to_dict(), "recipe_digest": recipe.digest(),
            "fingerprint": _weights_fingerprint(folder),
            "parameters": training["parameters"], "tokens": training["tokens"],
            "final_loss": training["final_loss"], "wall_time_s": training["wall_time_s"],
            "split_fingerprint": training["split"]["fingerprint"], "pairs": training["split"]["pairs"]}
    tmp = folder / f".{CARD_NAME}.tmp"
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, folder / CARD_NAME)
    return card


__all__ = ["BASE_MODELS", "BaseRecipe", "base_model_card", "base_model_dir", "base_model_names", "get_base_recipe",
           "is_built", "recipe_training_settings", "write_base_card"]
