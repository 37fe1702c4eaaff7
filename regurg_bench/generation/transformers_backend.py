"""Hugging Face transformers ``generate``: the CPU path and the fallback for every causal LM.

Batched greedy decoding with left padding (so every row's prompt ends where generation starts), the
one prompt of :mod:`regurg_bench.prompt`, stop at the first newline. Tokenisation follows lm-eval's
``hf`` backend (the tokenizer's own special-token default), so a teacher generates from exactly the
input a student is evaluated on.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from regurg_bench.generation.base import (
    GenerationResult,
    Generator,
    GeneratorSignature,
    first_line,
    library_versions,
    register_generator,
)
from regurg_bench.prompt import PROMPT_TEMPLATE, STOP_SEQUENCES, render_prompt

#: Files whose bytes define a checkpoint's behaviour: weights, config, tokenizer (top level only, so the
#: hash ignores training cards, optimizer state and step-* sub-checkpoints).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".model", ".tiktoken")
_CONFIG_NAMES = ("config.json", "generation_config.json", "special_tokens_map.json", "added_tokens.json",
                 "vocab.json", "vocab.txt", "merges.txt", "chat_template.jinja", "chat_template.json",
                 "model.safetensors.index.json", "pytorch_model.bin.index.json")
_FINGERPRINTS: dict[tuple, str] = {}


def _checkpoint_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and (
        p.suffix in _WEIGHT_SUFFIXES or p.name in _CONFIG_NAMES or p.name.startswith("tokenizer")))


def checkpoint_fingerprint(path: str | Path) -> str:
    """``sha256:<hex>`` over the names and bytes of a local checkpoint's weight, config and tokenizer
    files (top level, sorted). Memoised per process on (path, sizes, mtimes): ~1 s for 540 MB."""
    folder = Path(path)
    files = _checkpoint_files(folder) if folder.is_dir() else []
    if not any(p.name == "config.json" for p in files):
        raise FileNotFoundError(f"{folder} is not a Hugging Face checkpoint folder (no config.json)")
    memo_key = (str(folder.resolve()),) + tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if memo_key not in _FINGERPRINTS:
        digest = hashlib.sha256()
        for p in files:
            digest.update(p.name.encode() + b"\x00")
            with open(p, "rb") as fh:
                for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(chunk)
            digest.update(b"\x00")
        _FINGERPRINTS[memo_key] = "sha256:" + digest.hexdigest()
    return _FINGERPRINTS[memo_key]


def dtype_kwarg(dtype) -> dict[str, Any]:
    """``{"dtype": dtype}`` for transformers >= 4.56, ``{"torch_dtype": dtype}`` before (renamed)."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def _config_dtype(model: str, revision: str | None) -> str:
    """The dtype a checkpoint declares (what ``dtype="auto"`` loads), read without loading the model."""
    config = Path(model) / "config.json"
    if config.is_file():
        data = json.loads(config.read_text(encoding="utf-8"))
        return str(data.get("dtype") or data.get("torch_dtype") or "float32")
    return "auto"


@register_generator("transformers")
class TransformersGenerator(Generator):
    """Greedy translation with a local or Hub causal LM through ``model.generate``.

    ``model``: a local checkpoint folder (its content hash is the revision) or a Hub id (then pin
    ``revision``). ``batch_size`` is the micro-batch of one ``generate`` call (the runner's batch is
    split into these). ``dtype``: ``auto`` (what the checkpoint declares), ``float32``, ``bfloat16``...
    ``device``: ``None`` picks CUDA when visible, else CPU. ``add_special_tokens``: ``None`` keeps the
    tokenizer's default (as lm-eval does). ``num_threads``: torch's intra-op threads for this process
    (``torch.set_num_threads``, process-wide). On a small shared CPU, 1 thread was ~8x faster than 2 for
    a 2M-parameter model when other jobs competed for the cores (OpenMP threads spin-waiting).
    """

    def __init__(self, model: str | os.PathLike, *, revision: str | None = None, batch_size: int = 16,
                 max_new_tokens: int = 256, dtype: str = "auto", device: str | None = None,
                 add_special_tokens: bool | None = None, trust_remote_code: bool = False,
                 num_threads: int | None = None) -> None:
        self.model_name = str(model)
        self.revision = revision
        self.batch_size = int(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.dtype = dtype
        self.device = device
        self.add_special_tokens = add_special_tokens
        self.trust_remote_code = trust_remote_code
        self.num_threads = num_threads
        self._model = None
        self._tokenizer = None
        self._signature: GeneratorSignature | None = None

    # -- signature -----------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return Path(self.model_name).is_dir()

    def _model_identity(self) -> tuple[str, str | None, dict[str, Any]]:
        """(model, revision, info) for the signature: a local folder is named by its content hash."""
        if self.is_local:
            path = Path(self.model_name).resolve()
            return "local", checkpoint_fingerprint(path), {"path": str(path)}
        return self.model_name, self.revision or "main", {}

    def _resolved_dtype(self) -> str:
        return _config_dtype(self.model_name, self.revision) if self.dtype == "auto" else self.dtype

    def signature(self) -> GeneratorSignature:
        if self._signature is None:
            model, revision, info = self._model_identity()
            versions = {k: v.split("+")[0] for k, v in library_versions("torch", "transformers").items()}
            self._signature = GeneratorSignature(
                kind=self.kind, model=model, revision=revision, prompt_template=PROMPT_TEMPLATE,
                decoding={"strategy": "greedy", "max_new_tokens": self.max_new_tokens,
                          "stop": list(STOP_SEQUENCES)},
                versions=versions,
                options={"dtype": self._resolved_dtype(), "add_special_tokens": self.add_special_tokens,
                         "postprocess": "first_line+strip"},
                info=info | {"device": self.device or "auto", "batch_size": self.batch_size,
                             "num_threads": self.num_threads},
            )
        return self._signature

    # -- generation ----------------------------------------------------------------------------

    def _load(self) -> None:
        if self._model is not None:
            return
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.num_threads:
            torch.set_num_threads(int(self.num_threads))
        kwargs: dict[str, Any] = {"trust_remote_code": self.trust_remote_code}
        if not self.is_local and self.revision:
            kwargs["revision"] = self.revision
        tokenizer = AutoTokenizer.from_pretrained(self.model_name, **kwargs)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = "auto" if self.dtype == "auto" else getattr(torch, self.dtype)
        model = AutoModelForCausalLM.from_pretrained(self.model_name, **dtype_kwarg(dtype), **kwargs)
        model.to(device).eval()
        self._device, self._tokenizer, self._model = device, tokenizer, model
        self._stop = _newline_stop(tokenizer, device)

    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        self._load()
        out: list[GenerationResult] = []
        for start in range(0, len(sources), self.batch_size):
            chunk = sources[start:start + self.batch_size]
            prompts = [render_prompt(s, src_lang, tgt_lang) for s in chunk]
            out += self._generate_prompts(prompts)
        return out

    def _generate_prompts(self, prompts: list[str]) -> list[GenerationResult]:
        import torch

        tok, model = self._tokenizer, self._model
        special = {} if self.add_special_tokens is None else {"add_special_tokens": self.add_special_tokens}
        enc = tok(prompts, return_tensors="pt", padding=True, **special).to(self._device)
        pad_id = tok.pad_token_id
        with torch.inference_mode():
            generated = model.generate(**enc, do_sample=False, max_new_tokens=self.max_new_tokens,
                                       stopping_criteria=self._stop, pad_token_id=pad_id,
                                       num_beams=1, temperature=None, top_p=None, top_k=None)
        new = generated[:, enc["input_ids"].shape[1]:]
        results = []
        for row in new:
            ids = row.tolist()
            # Rows that finished early are padded; count what the model actually produced.
            n_tokens = len(ids) - _trailing(ids, pad_id)
            text = first_line(tok.decode(ids, skip_special_tokens=True))
            if not text:
                results.append(GenerationResult.empty(
                    "empty completion (the model ended or wrote a newline first)", n_tokens=n_tokens))
            else:
                results.append(GenerationResult.success(text, n_tokens=n_tokens))
        return results

    def close(self) -> None:
        self._model = None
        self._tokenizer = None


def _newline_stop(tokenizer, device: str):
    """A ``StoppingCriteriaList`` that ends each row once its last token contains a newline.

    Equivalent to ``generate(stop_strings=["\\n"])`` for a one-character stop (a test checks this) but
    one tensor look-up per step: the table of vocabulary entries whose text contains ``\\n`` is built
    once per tokenizer.
    """
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    table = torch.tensor([STOP_SEQUENCES[0] in p for p in pieces], device=device)

    class NewlineStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return table[input_ids[:, -1]]

    return StoppingCriteriaList([NewlineStop()])


def _trailing(ids: list[int], pad_id: int | None) -> int:
    n = 0
    for token in reversed(ids):
        if token != pad_id:
            break
        n += 1
    return n
