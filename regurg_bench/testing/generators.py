"""Deterministic stand-ins for tests and dry runs: a model-free generator and a scripted tiny LM.

* :class:`ScriptedGenerator` (kind ``scripted``) writes a fixed function of the source, instantly or
  with a delay per batch, and can fail chosen sources: for cache, resume and builder tests, and for
  dry runs of a build config without any model. Its fault and speed knobs are not part of its
  signature, so a rerun without them reads the same cache.
* :func:`scripted_model` turns a real (random) tiny HF Llama into one whose greedy continuation of
  *any* prompt is a chosen token sequence followed by a newline: a real checkpoint with a known answer,
  so every LM backend can be checked for exact output, newline stopping and token counts.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from regurg_bench.generation.base import (
    GenerationResult,
    Generator,
    GeneratorSignature,
    register_generator,
)


def scripted_translation(source: str, src_lang: str, tgt_lang: str) -> str:
    """The ``scripted`` generator's output: the source's words reversed, tagged with the direction."""
    return f"[{src_lang}>{tgt_lang}] " + " ".join(reversed(source.split()))


@register_generator("scripted")
class ScriptedGenerator(Generator):
    """A model-free, deterministic generator (see the module doc). Not a translation system.

    ``delay``: seconds to sleep per :meth:`generate` call (to make a run slow enough to kill).
    ``fail_sources``: sources answered with a failure. ``empty_sources``: sources answered as empty.
    ``fail_marker``: a file path; while that file exists every source fails (lets a test flip
    failures off between runs without changing options). ``log_path``: append every source that
    reaches :meth:`generate` to this file (lets a test count what was generated, across processes).
    """

    def __init__(self, *, variant: str = "reverse-words", delay: float = 0.0, fail_sources: list[str] | None = None,
                 empty_sources: list[str] | None = None, fail_marker: str | None = None,
                 log_path: str | None = None) -> None:
        if variant != "reverse-words":
            raise ValueError("ScriptedGenerator knows one variant: 'reverse-words'")
        self.variant = variant
        self.delay = float(delay)
        self.fail_sources = set(fail_sources or ())
        self.empty_sources = set(empty_sources or ())
        self.fail_marker = fail_marker
        self.log_path = log_path
        self.calls = 0

    def signature(self) -> GeneratorSignature:
        return GeneratorSignature(kind=self.kind, model=self.variant, revision="1",
                                  info={"delay": self.delay})

    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        self.calls += 1
        if self.log_path:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write("".join(s.replace("\n", " ") + "\n" for s in sources))
                fh.flush()
                os.fsync(fh.fileno())
        if self.delay:
            time.sleep(self.delay)
        marker = bool(self.fail_marker) and os.path.exists(self.fail_marker)
        out = []
        for source in sources:
            if marker or source in self.fail_sources:
                out.append(GenerationResult.failure("scripted failure"))
            elif source in self.empty_sources or not source.strip():
                out.append(GenerationResult.empty("scripted empty output"))
            else:
                out.append(GenerationResult.success(scripted_translation(source, src_lang, tgt_lang)))
        return out


def scripted_model(base_dir: str | Path, out_dir: str | Path, words: list[str], *, scale: float = 50.0) -> str:
    """Save a copy of the HF Llama in ``base_dir`` whose greedy output for any prompt is ``words``
    (one token each, found in its vocabulary) then ``"\\n"``. Returns the expected completion text.

    How: untie the output head; every input token except the scripted ones embeds to ``scale * e0``;
    scripted token *i* embeds to ``scale * e(i+1)``; the head row of scripted token *i* points along
    ``e(i)`` and the newline's along ``e(len(words))``. The residual stream is dominated by the current
    token's embedding (random layers add little), so each step deterministically picks the next one.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_dir)
    from regurg_bench.generation.transformers_backend import dtype_kwarg

    model = AutoModelForCausalLM.from_pretrained(base_dir, **dtype_kwarg(torch.float32))
    hidden = model.config.hidden_size
    if len(words) + 2 > hidden:
        raise ValueError("too many scripted words for the hidden size")
    ids = []
    for word in words:
        piece = tok.encode(word, add_special_tokens=False)
        if len(piece) != 1:
            raise ValueError(f"{word!r} is not a single token of this tokenizer ({piece})")
        ids.append(piece[0])
    newline = tok.encode("\n", add_special_tokens=False)
    if len(newline) != 1:
        raise ValueError("the tokenizer has no single newline token")
    eye = torch.eye(hidden)
    with torch.no_grad():
        emb = model.get_input_embeddings().weight
        emb.copy_(scale * eye[0].expand_as(emb))
        head = torch.zeros(emb.shape[0], hidden)
        for i, token in enumerate(ids):
            emb[token] = scale * eye[i + 1]
            head[token] = scale * eye[i]
        head[newline[0]] = scale * eye[len(ids)]
        model.config.tie_word_embeddings = False
        if hasattr(model.config, "get_text_config"):
            model.config.get_text_config().tie_word_embeddings = False
        model.lm_head = torch.nn.Linear(hidden, emb.shape[0], bias=False)
        model.lm_head.weight.copy_(head)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return tok.decode(ids)
