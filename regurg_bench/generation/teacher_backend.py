"""Self/teacher generation: a local checkpoint (normally one regurg-bench trained) writes the targets.

This is the recursive setting of the study: a model trained on real pairs generates the targets the
next student learns from. The checkpoint must be a local folder; the signature names it by the
content hash of its weights, config and tokenizer (so retraining into the same folder regenerates),
and records its path and, when present, its ``training_card.json`` (what it was trained on). Keeping
the teacher's training data disjoint from the sources it translates is the builder's job: the card's
data fingerprint is recorded here so the manifest can show it.

Decoding runs through the ``transformers`` backend (CPU, or one GPU) or, with ``backend="vllm"``,
through vLLM; every other option goes to that backend.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

from regurg_bench.generation.base import (
    GenerationResult,
    Generator,
    GeneratorSignature,
    register_generator,
)
from regurg_bench.generation.transformers_backend import TransformersGenerator

#: Written by regurg-bench's trainer next to the weights (regurg_bench.training.card.CARD_NAME).
TRAINING_CARD = "training_card.json"
#: Card keys copied into the signature's provenance (small, and what tells the data apart).
_CARD_KEYS = ("card_version", "data", "train_data", "data_fingerprint", "dataset", "preset", "seed", "steps",
              "base_model", "init", "config_hash")


@register_generator("teacher")
class TeacherGenerator(Generator):
    """A local checkpoint as the generator. ``checkpoint``: the folder (``config.json`` + weights), or the
    name of an embedded model (``bible-base-en-es``: self-regurgitation when the students fine-tune it).
    ``backend``: ``transformers`` (default) or ``vllm``. ``options``: that backend's options
    (``batch_size``, ``max_new_tokens``, ``dtype``, ``device``; for vLLM ``tensor_parallel_size``...)."""

    def __init__(self, checkpoint: str | os.PathLike, *, backend: Literal["transformers", "vllm"] = "transformers",
                 **options: Any) -> None:
        from regurg_bench.training.trainer import resolve_model_spec

        # an embedded (base) model name resolves to its cached folder, built at first use
        path = Path(checkpoint) if Path(checkpoint).exists() else (resolve_model_spec(str(checkpoint)) or Path(checkpoint))
        if not (path / "config.json").is_file():
            raise ValueError(f"teacher checkpoint {path} is not a local Hugging Face checkpoint folder "
                             f"(no config.json); train one with regurg-bench or pass any local causal LM")
        self.checkpoint = path.resolve()
        self.backend = backend
        if backend == "transformers":
            self._inner: Generator = TransformersGenerator(self.checkpoint, **options)
        elif backend == "vllm":
            from regurg_bench.generation.vllm_backend import VLLMGenerator

            self._inner = VLLMGenerator(self.checkpoint, **options)
        else:
            raise ValueError(f"teacher backend must be 'transformers' or 'vllm', not {backend!r}")

    def training_card(self) -> dict[str, Any] | None:
        card = self.checkpoint / TRAINING_CARD
        try:
            return json.loads(card.read_text(encoding="utf-8")) if card.is_file() else None
        except ValueError:
            return None

    def signature(self) -> GeneratorSignature:
        inner = self._inner.signature()
        card = self.training_card()
        info = dict(inner.info) | {"checkpoint": str(self.checkpoint), "backend": self.backend,
                                   "trained_by_regurg_bench": card is not None}
        if card is not None:
            info["training_card"] = {k: card[k] for k in _CARD_KEYS if k in card}
        return GeneratorSignature(kind=self.kind, model=inner.model, revision=inner.revision,
                                  prompt_template=inner.prompt_template, decoding=inner.decoding,
                                  versions=inner.versions, options=dict(inner.options) | {"backend": self.backend},
                                  info=info)

    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        return self._inner.generate(sources, src_lang, tgt_lang)

    def close(self) -> None:
        self._inner.close()
