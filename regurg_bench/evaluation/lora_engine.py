"""One vLLM engine for many LoRA students: lm-eval's own ``vllm`` LM, started once per base checkpoint and
engine settings in a process, each student's requests routed to its adapter by a ``LoRARequest``.

What a student gets is what ``lm_eval --model vllm --model_args pretrained=BASE,lora_local_path=ADAPTER,
max_lora_rank=R,...`` gives it on an engine of its own (tested, ``tests/test_lora_engine.py``): the same
lm-eval class built from the same arguments, so the same engine configuration and kernels. Three things keep a
student's outputs independent of which students shared the engine before it:

* one adapter in the engine at a time (``max_loras`` stays vLLM's default 1, so every student runs in slot 0
  and a batch never mixes adapters: each evaluation sends one student's requests only);
* each adapter's id is derived from its weights' content (sha256), so a cached adapter is never another's;
* the prefix cache is reset before each student (a second evaluation of the same adapter in one process
  would otherwise reuse its KV blocks, which an engine of its own would recompute).

Engine starts are counted (:func:`engine_starts`): the protocol reports them, the tests assert them.
Only one engine is kept: a request for another base (M4 continues a merged REGURG student) or other
engine arguments stops the old engine before starting the new one (a GPU holds one at a time).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from regurg_bench.hashing import file_sha256

#: vLLM's allowed ``max_lora_rank`` values (``vllm.config.lora.MaxLoRARanks``, 0.32)
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)

_lock = threading.Lock()
#: the shared engine's owner name for vllm_backend.claim_engine
SHARED_ENGINE = "the shared LoRA evaluation engine"
_state: dict[str, Any] = {"key": None, "lm": None, "starts": 0, "ids": {}}


def max_lora_rank(rank: int) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts for adapters of rank ``rank``."""
    for allowed in VLLM_LORA_RANKS:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} is above vLLM's largest max_lora_rank ({VLLM_LORA_RANKS[-1]})")


def engine_starts() -> int:
    """How many shared engines this process has started (a real count, for the run's log and the tests)."""
    return _state["starts"]


def adapter_digest(adapter_dir: str | Path) -> str:
    """sha256 of an adapter's weights and config (peft's files): its identity for the engine."""
    folder = Path(adapter_dir)
    files = [folder / "adapter_config.json"] + sorted(folder.glob("adapter_model.*"))
    missing = [f.name for f in files if not f.is_file()]
    if missing or len(files) < 2:
        raise FileNotFoundError(f"{folder}: not a peft adapter folder (missing {missing or ['adapter_model.*']})")
    return file_sha256(files[0]) + "".join(file_sha256(f) for f in files[1:])


def _lora_request(adapter_dir: str):
    from vllm.lora.request import LoRARequest

    digest = adapter_digest(adapter_dir)
    ids = _state["ids"]
    ids.setdefault(digest, len(ids) + 1)  # ids start at 1 (0 means "no adapter" to vLLM)
    return LoRARequest(f"adapter-{digest[:16]}", ids[digest], adapter_dir)


def shared_lora_lm(model_args: dict[str, Any], additional: dict[str, Any]):
    """lm-eval's ``vllm`` LM for ``model_args`` (which name ``lora_local_path``), routed to that adapter.

    ``additional`` is what ``simple_evaluate`` adds when it builds the model itself (batch_size,
    max_batch_size, device). The engine is reused when every argument but the adapter is the same."""
    from lm_eval.api.registry import get_model

    adapter = model_args.get("lora_local_path")
    if not adapter:
        raise ValueError("a shared LoRA engine needs lora_local_path= in the model arguments")
    engine_args = {k: v for k, v in model_args.items() if k != "lora_local_path"}
    key = json.dumps({"model": engine_args, "additional": additional}, sort_keys=True, default=str)
    with _lock:
        if _state["key"] != key:
            close_shared_engine()
            from regurg_bench.generation.vllm_backend import claim_engine

            claim_engine(SHARED_ENGINE, close_shared_engine)
            lm = get_model("vllm").create_from_arg_obj(dict(model_args), additional)
            _state.update(key=key, lm=lm, starts=_state["starts"] + 1)
        lm = _state["lm"]
        lm.lora_request = _lora_request(str(adapter))
        reset = getattr(getattr(lm, "model", None), "reset_prefix_cache", None)
        if callable(reset):
            reset()
        return lm


def close_shared_engine() -> None:
    """Stop the shared engine (its engine process too), if one is running."""
    from regurg_bench.generation.vllm_backend import release_engine

    release_engine(SHARED_ENGINE)
    lm = _state["lm"]
    _state.update(key=None, lm=None)
    if lm is not None:
        from regurg_bench.generation.vllm_backend import shutdown_engine

        shutdown_engine(getattr(lm, "model", None))
        del lm
        import gc

        gc.collect()
