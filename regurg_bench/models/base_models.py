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
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regurg_bench.assets import cache_dir, file_lock, sha256_file

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


def build_base_model(recipe: BaseRecipe, out: Path, *, progress: bool = False) -> dict[str, Any]:
    """Train ``recipe`` into ``out`` (an empty or new folder) and write its card last; return the card."""
    from regurg_bench.training import TrainConfig, train

    train(TrainConfig(split=recipe.corpus, out=str(out), base_model=f"scratch:{recipe.preset}",
                      max_steps=recipe.max_steps, batch_size=recipe.batch_size, lr=recipe.lr, seed=recipe.seed,
                      num_threads=recipe.num_threads, precision=recipe.precision, checkpoint_every=100,
                      progress=progress, log_every=50))
    training = json.loads((out / "training_card.json").read_text(encoding="utf-8"))
    card = {"recipe": recipe.to_dict(), "recipe_digest": recipe.digest(),
            "fingerprint": _weights_fingerprint(out),
            "parameters": training["parameters"], "tokens": training["tokens"],
            "final_loss": training["final_loss"], "wall_time_s": training["wall_time_s"],
            "split_fingerprint": training["split"]["fingerprint"], "pairs": training["split"]["pairs"]}
    tmp = out / f".{CARD_NAME}.tmp"
    tmp.write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, out / CARD_NAME)
    return card


def base_model_path(name: str, *, progress: bool = True) -> Path:
    """A folder with the HF checkpoint of base model ``name``, built once (deterministically) at first use.

    A killed build resumes: training checkpoints live in a work folder beside the target that the
    next call continues from; the target appears only complete, with its card."""
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
    if spec in BASE_MODELS:
        return base_model_path(spec)
    from regurg_bench.models.registry_models import EMBEDDED_MODELS, embedded_model_path

    if spec in EMBEDDED_MODELS:
        return embedded_model_path(spec)
    return Path(spec) if Path(spec).exists() else None


__all__ = ["BASE_MODELS", "BaseRecipe", "base_model_card", "base_model_dir", "base_model_names",
           "base_model_path", "build_base_model", "get_base_recipe", "is_built", "resolve_model_spec"]
