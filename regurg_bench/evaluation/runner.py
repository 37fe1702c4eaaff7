"""``regurg-bench eval``: lm-eval on our tasks, without indexing lm-eval's ~14k built-in tasks.

It calls ``lm_eval.simple_evaluate`` with the same arguments and defaults as the ``lm_eval`` CLI
(seeds 0/1234/1234/1234, lm-eval's bootstrap default), so the metrics are identical; it only builds
the ``TaskManager`` over our task folder when every requested task is ours, and picks the device
itself. On CPU, ``--model hf`` generates through ``regurg-hf`` (:mod:`regurg_bench.evaluation.fast_hf`:
lm-eval's ``hf`` with a faster greedy decoder whose text is identical, tested); ``fast_generation=False``
or ``REGURG_BENCH_PLAIN_HF=1`` keeps lm-eval's own ``hf``. Results are saved the way ``lm_eval --output_path`` saves them, plus a ``regurg_bench`` block
with sacrebleu signatures, test-set fingerprints and package versions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench._lm_eval_hook import task_config_dir
from regurg_bench.versions import EVAL_PACKAGES, package_versions

log = logging.getLogger(__name__)

#: lm-eval CLI's default seeds: python random, numpy, torch, few-shot sampler.
LM_EVAL_DEFAULT_SEEDS = (0, 1234, 1234, 1234)
#: set to 1 to generate with lm-eval's own ``hf`` model on CPU too (the reference path)
PLAIN_HF_ENV = "REGURG_BENCH_PLAIN_HF"
#: the owner name, for vllm_backend.claim_engine, of the engine lm-eval's own ``vllm`` model starts
LM_EVAL_ENGINE = "lm-eval's vllm model"


@dataclass
class EvalRequest:
    """Everything ``regurg-bench eval`` passes to lm-eval (names as in the ``lm_eval`` CLI)."""

    model: str = "hf"
    model_args: str | dict[str, Any] = ""
    tasks: list[str] = field(default_factory=lambda: ["regurg_mt"])
    num_fewshot: int | None = None
    batch_size: int | str = 1
    max_batch_size: int | None = None
    device: str = "auto"
    limit: float | None = None
    output_path: str | None = None
    log_samples: bool = False
    gen_kwargs: str | None = None
    metadata: dict[str, Any] | None = None
    include_path: str | None = None
    seeds: tuple[int, int, int, int] = LM_EVAL_DEFAULT_SEEDS
    #: lm-eval's stderr bootstrap (its default); 0 skips it (callers with their own intervals).
    bootstrap_iters: int = 100000
    #: vllm with ``lora_local_path=`` only: evaluate on this process's shared engine for the same base and
    #: arguments (:mod:`regurg_bench.evaluation.lora_engine`), started once, instead of an engine of its own
    shared_engine: bool = False
    #: on CPU, generate ``--model hf`` through ``regurg-hf`` (identical text, faster)
    fast_generation: bool = True
    #: append lm-eval's (and transformers') log records and prints here instead of the terminal, and show
    #: no lm-eval progress bar (a caller with its own bar: the protocol's run log)
    log_file: str | None = None


#: the loggers whose records :func:`output_to` moves into a file (level kept for the file)
_QUIET_LOGGERS = {"lm_eval": logging.INFO, "transformers": logging.WARNING, "datasets": logging.WARNING,
                  "regurg_bench.evaluation": logging.INFO}


@contextlib.contextmanager
def output_to(log_file: str | None) -> Iterator[None]:
    """While the block runs, lm-eval's log records (e.g. its task-indexing warning about
    ``max_seq_lengths``), anything printed, and transformers' warnings go to ``log_file``, and tqdm shows
    no bar (``TQDM_DISABLE``: lm-eval has no switch for its own). A bar created before the block (the
    protocol's) keeps drawing on the terminal. ``None``: nothing changes."""
    if log_file is None:
        yield
        return
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "a", encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s [%(name)s] %(message)s"))
        saved = []
        for name, level in _QUIET_LOGGERS.items():
            logger = logging.getLogger(name)
            saved.append((logger, logger.handlers[:], logger.propagate, logger.level))
            logger.handlers, logger.propagate = [handler], False
            logger.setLevel(level)
        tqdm_disable = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"
        try:
            with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                yield
        finally:
            for logger, handlers, propagate, level in saved:
                logger.handlers, logger.propagate = handlers, propagate
                logger.setLevel(level)
            _release_stream(stream)
            if tqdm_disable is None:
                os.environ.pop("TQDM_DISABLE", None)
            else:
                os.environ["TQDM_DISABLE"] = tqdm_disable


def _release_stream(stream: Any) -> None:
    """A library first imported inside :func:`output_to` (vLLM configures its loggers at import) made handlers
    on the redirected ``sys.stdout``, the log file about to be closed: point them at the real stdout, or their
    next record (vLLM's engine shutdown) prints a "Logging error" traceback."""
    for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                handler.setStream(sys.stdout)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when a GPU is visible to torch, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def generation_model(model: str, device: str, fast: bool = True) -> str:
    """The lm-eval model that runs ``model``: ``regurg-hf`` for ``hf`` on CPU (same text, faster)."""
    from regurg_bench._lm_eval_hook import MODEL_NAME, register_models

    plain = os.environ.get(PLAIN_HF_ENV, "").strip().lower() not in ("", "0", "false", "no")
    if model != "hf" or device != "cpu" or not fast or plain:
        return model
    register_models(force=True)
    return MODEL_NAME


def _our_task_names() -> set[str]:
    """Names (tasks and groups) defined in our task folder, read cheaply from the YAML files."""
    import yaml

    names: set[str] = set()
    for path in task_config_dir().rglob("*.yaml"):
        # Our YAML only uses !function, which a plain loader can skip.
        loader = type("L", (yaml.SafeLoader,), {})
        loader.add_constructor("!function", lambda ld, node: None)
        cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
        for key in ("task", "group"):
            if isinstance(cfg.get(key), str):
                names.add(cfg[key])
    return names


def build_task_manager(tasks: list[str], include_path: str | None = None, metadata: dict | None = None):
    """A TaskManager over our folder only, unless some requested task is not ours."""
    from lm_eval.tasks import TaskManager

    ours = _our_task_names()
    only_ours = include_path is None and all(t in ours for t in tasks)
    paths = [str(task_config_dir())] + ([include_path] if include_path else [])
    return TaskManager(include_path=paths, include_defaults=not only_ours, metadata=metadata or {})


def _model(req: EvalRequest, device: str):
    """What ``simple_evaluate`` gets as its model: the model name (lm-eval builds it from ``model_args``), or
    for a shared LoRA engine the ``vllm`` LM that lm-eval would build, already started and routed."""
    if not req.shared_engine:
        return generation_model(req.model, device, req.fast_generation)
    if req.model != "vllm":
        raise ValueError(f"shared_engine is for the vllm backend (got {req.model!r})")
    from lm_eval.utils import simple_parse_args_string

    from regurg_bench.evaluation.lora_engine import shared_lora_lm

    args = simple_parse_args_string(req.model_args) if isinstance(req.model_args, str) else dict(req.model_args)
    return shared_lora_lm(args, {"batch_size": req.batch_size, "max_batch_size": req.max_batch_size, "device": device})


def run_eval(req: EvalRequest) -> dict[str, Any]:
    """Run lm-eval; save and return its results dict (with our ``regurg_bench`` block)."""
    with output_to(req.log_file):
        return _run_eval(req)


def _run_eval(req: EvalRequest) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.utils import handle_non_serializable

    from regurg_bench.evaluation.signatures import sacrebleu_signatures
    from regurg_bench.evaluation.tasks import test_set_fingerprints

    device = resolve_device(req.device)
    rng = contextlib.nullcontext()
    if req.model == "vllm":
        from regurg_bench.generation.vllm_backend import claim_engine, cpu_engine_defaults, preserved_rng

        cpu_engine_defaults()  # on CPU: a fixed KV cache, no inductor compile per student (see there)
        rng = preserved_rng()  # an engine in this process (small CPU machines) seeds the global generators
        if not req.shared_engine:  # lm-eval's own engine, stopped below (the shared one claims its own)
            claim_engine(LM_EVAL_ENGINE, lambda: None)
    task_manager = build_task_manager(req.tasks, req.include_path, req.metadata)
    tracker = EvaluationTracker(output_path=req.output_path) if req.output_path else None
    seeds = req.seeds
    with rng:
        results = simple_evaluate(
            model=_model(req, device), model_args=req.model_args, tasks=req.tasks, num_fewshot=req.num_fewshot,
            batch_size=req.batch_size, max_batch_size=req.max_batch_size, device=device, limit=req.limit,
            log_samples=req.log_samples, evaluation_tracker=tracker, gen_kwargs=req.gen_kwargs,
            task_manager=task_manager, random_seed=seeds[0], numpy_random_seed=seeds[1],
            torch_random_seed=seeds[2], fewshot_random_seed=seeds[3], metadata=req.metadata,
            bootstrap_iters=req.bootstrap_iters,
        )
    if req.model == "vllm":
        # lm-eval keeps no handle on its vllm.LLM; collect it now so that its engine process stops before
        # the next evaluation starts one (a protocol run evaluates every student in one process); an engine
        # in this process froze the heap at start-up: unfreeze it first
        import gc

        from regurg_bench.generation.vllm_backend import release_frozen_objects

        release_frozen_objects()
        gc.collect()
        if not req.shared_engine:
            from regurg_bench.generation.vllm_backend import release_engine

            release_engine(LM_EVAL_ENGINE)
    if results is None:  # non-zero rank in a distributed run
        return {}
    if req.shared_engine:  # lm-eval records an LM instance by its class: name it as `lm_eval --model vllm` would
        results.setdefault("config", {})["model"] = req.model
    evaluated = sorted(results.get("configs", {}))
    results["regurg_bench"] = {
        "sacrebleu_signatures": sacrebleu_signatures(),
        "test_set_fingerprints": test_set_fingerprints(evaluated),
        "device": device,
        "versions": package_versions(*EVAL_PACKAGES),
    }
    samples = results.pop("samples", None)
    if tracker is not None:
        tracker.save_results_aggregated(results=results, samples=samples if req.log_samples else None)
        if req.log_samples and samples:
            for name in results["configs"]:
                tracker.save_results_samples(task_name=name, samples=samples[name])
    # Round-trip through JSON so callers get exactly what was saved (no tensors, no callables).
    return json.loads(json.dumps(results, default=handle_non_serializable, ensure_ascii=False))
