"""Executors: who runs the protocol's steps. The steps do not know which one runs them.

- ``local`` (default): the steps in this process, one after another; with ``workers`` > 1 (``--workers``, the
  default on a machine with 2 or more CPUs) a batch whose steps may run side by side (:attr:`Step.side_by_side`:
  training and ``hf`` evaluation on CPU) runs on that many spawned worker processes instead, each step once its
  dependencies are done. A step pins its thread count (or has the process default, the same in every worker),
  so the bits are those of the one-process run (tested); an evaluation is mostly per-token Python on one core,
  so two of them, or one beside a training, use the second core (2 cores, Intel AMX: 8 evaluations 40.3 s in
  one process, 31.8 s on two workers). This module must not import torch: workers import it before
  :func:`_worker_start` sets OpenMP's wait policy (tested).
- ``ray``: every step a Ray task with the resources it declares (``resources:`` in the config: CPUs, GPUs),
  on a running cluster (``--ray-address auto`` or ``HOST:PORT``) or a local one started for the run.
  Steps read and write the run folder, so on a cluster it must be on storage every node sees. A step
  waits for the steps it depends on (an evaluation for its training, M4 for its REGURG student).

Both report each finished step to ``on_done`` (progress, timings) and return ``{step name: outcome}``.
A step that fails raises in the driver, after the steps already running have finished or failed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from regurg_bench.protocol.steps import Outcome, Step, execute
from regurg_bench.scoring.sentence_stats import WORKERS_ENV as SCORE_WORKERS_ENV
from regurg_bench.scoring.sentence_stats import spawn_safe

OnDone = Callable[[Outcome], None]
#: ``--workers``' default when the command line leaves it out: ``auto`` or a number (the tests set 1)
WORKERS_ENV = "REGURG_BENCH_WORKERS"


def default_workers(workers: int | str | None = None) -> int:
    """Worker processes for the local executor: ``workers``, else ``REGURG_BENCH_WORKERS``, else ``auto``:
    2 on a machine with 2 or more usable CPUs (more workers would only share the same cores), else 1."""
    value = workers if workers is not None else os.environ.get(WORKERS_ENV, "auto")
    if str(value).strip().lower() == "auto":
        return 2 if len(os.sched_getaffinity(0)) >= 2 else 1
    try:
        n = int(value)
    except ValueError:
        raise ValueError(f"workers must be a positive integer or 'auto', got {value!r}") from None
    if n < 1:
        raise ValueError(f"workers must be a positive integer or 'auto', got {value!r}")
    return n


def _worker_start() -> None:
    """Runs first in every worker process, before torch is imported: OpenMP threads that wait for work
    sleep instead of spinning (two processes spinning on 2 cores ran 3.4x slower than one process; the
    setting changes no result), and the TER statistics of an evaluation stay in the worker (the workers
    are the parallelism). A value the user set wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault(SCORE_WORKERS_ENV, "1")


class LocalExecutor:
    """Steps in this process, or with ``workers`` > 1 those that may run side by side on worker processes."""

    name = "local"

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    def run(self, steps: Sequence[Step], on_done: OnDone | None = None) -> dict[str, Outcome]:
        later = {s.name for s in steps}
        for step in steps:  # callers list a step after the steps it depends on
            later.discard(step.name)
            if any(d in later for d in step.deps):
                raise ValueError(f"step {step.name} is listed before a step it depends on ({step.deps})")
        if self.uses_workers(steps):
            return self._run_on_workers(steps, on_done)
        outcomes: dict[str, Outcome] = {}
        for step in steps:
            outcomes[step.name] = execute(step)
            if on_done:
                on_done(outcomes[step.name])
        return outcomes

    def uses_workers(self, steps: Sequence[Step]) -> bool:
        """Whether :meth:`run` hands ``steps`` to worker processes: more than one is left to compute and every
        one may run side by side (a batch with a vLLM evaluation stays here: one engine serves them all)."""
        todo = [s for s in steps if s.done() is None]
        return self.workers > 1 and len(todo) > 1 and all(s.side_by_side for s in todo) and spawn_safe()

    def _run_on_workers(self, steps: Sequence[Step], on_done: OnDone | None) -> dict[str, Outcome]:
        """At most ``workers`` steps at a time, each once its dependencies are done; a finished step (its
        marker exists) is read here. The first failure is raised after the running steps have settled; steps
        that depend on a failed one do not start."""
        names = {s.name for s in steps}
        outcomes: dict[str, Outcome] = {}
        waiting, running = list(steps), {}  # type: list[Step], dict[Future, Step]
        failed: set[str] = set()
        first_error: BaseException | None = None
        try:
            while waiting or running:
                for step in [s for s in waiting if any(d in failed for d in s.deps)]:
                    waiting.remove(step)
                    failed.add(step.name)
                while len(running) < self.workers and first_error is None:
                    step = self._next(waiting, running, outcomes, names)
                    if step is None:
                        break
                    waiting.remove(step)
                    if step.done() is not None:  # cached: nothing to run
                        outcomes[step.name] = execute(step)
                        if on_done:
                            on_done(outcomes[step.name])
                        continue
                    running[self._workers().submit(execute, step)] = step
                if not running:
                    break
                finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    try:
                        outcomes[step.name] = future.result()
                    except Exception as err:
                        first_error = first_error or err
                        failed.add(step.name)
                        continue
                    if on_done:
                        on_done(outcomes[step.name])
        except BaseException:  # Ctrl-C: no new step starts; the workers got the signal too
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            raise
        if first_error is not None:
            raise first_error
        return {s.name: outcomes[s.name] for s in steps}  # in the order given, whatever order they finished in

    @staticmethod
    def _next(waiting: list[Step], running: dict[Future, Step], outcomes: dict[str, Outcome],
              names: set[str]) -> Step | None:
        """The next step whose dependencies are done: first one of another stage than those running (an
        evaluation, mostly per-token Python, beside a training, mostly arithmetic), else the first listed."""
        ready = [s for s in waiting if all(d in outcomes or d not in names for d in s.deps)]
        stages = {s.stage for s in running.values()}
        return next((s for s in ready if s.stage not in stages), ready[0] if ready else None)

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            # spawn, not fork: this process has torch's OpenMP threads, which a forked child would not have
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_worker_start)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _execute_after(step: Step, *_deps: Any) -> Outcome:
    """The Ray task: Ray passes the outcomes of the steps it depends on once they exist (unused here).

    A shared LoRA engine (``eval.lora: adapter``) is stopped when the task ends: Ray runs a GPU task in a
    worker process of its own that exits afterwards (and would orphan the engine's process), and an engine kept
    in a worker would hold GPU memory that Ray hands to the next task. Under Ray each evaluation therefore
    starts its own engine, with the same outputs (one engine per worker needs engine actors: not built)."""
    from regurg_bench.evaluation.lora_engine import close_shared_engine

    try:
        return execute(step)
    finally:
        close_shared_engine()


class RayExecutor:
    """Steps as Ray tasks. ``address``: ``auto``, ``HOST:PORT`` or None (a local cluster with ``num_cpus``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'regurg-bench[ray]'") from None
        self.ray = ray
        self._own = not ray.is_initialized()
        if self._own:
            ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                     log_to_driver=False, ignore_reinit_error=True)
        self._task = ray.remote(_execute_after)

    def run(self, steps: Sequence[Step], on_done: OnDone | None = None) -> dict[str, Outcome]:
        ray = self.ray
        refs: dict[str, Any] = {}
        for step in steps:
            deps = [refs[d] for d in step.deps if d in refs]
            r = step.resources
            refs[step.name] = self._task.options(num_cpus=r.cpus, num_gpus=r.gpus or None,
                                                 name=step.name).remote(step, *deps)
        outcomes: dict[str, Outcome] = {}
        pending = {ref: name for name, ref in refs.items()}
        first_error: BaseException | None = None
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(ready[0])
            try:
                outcomes[name] = ray.get(ready[0])
            except Exception as err:  # report the first failure once the rest have settled
                first_error = first_error or err
                continue
            if on_done:
                on_done(outcomes[name])
        if first_error is not None:
            raise first_error
        return {s.name: outcomes[s.name] for s in steps}  # in the order given, whatever order they finished in

    def close(self) -> None:
        if self._own:
            self.ray.shutdown()


EXECUTORS = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str = "local", *, ray_address: str | None = None, num_cpus: int | None = None,
                  workers: int | str | None = None):
    if name == "local":
        return LocalExecutor(default_workers(workers))
    if name == "ray":
        return RayExecutor(ray_address, num_cpus)
    raise ValueError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
