"""Executors: who runs the protocol's steps. The steps do not know which one runs them.

- ``local`` (default): one step after another, in this process.
- ``ray``: every step a Ray task with the resources it declares (``resources:`` in the config: CPUs, GPUs),
  on a running cluster (``--ray-address auto`` or ``HOST:PORT``) or a local one started for the run.
  Steps read and write the run folder, so on a cluster it must be on storage every node sees. A step
  waits for the steps it depends on (an evaluation for its training, M4 for its REGURG student).

Both report each finished step to ``on_done`` (progress, timings) and return ``{step name: outcome}``.
A step that fails raises in the driver, after the steps already running have finished or failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from regurg_bench.protocol.steps import Outcome, Step, execute

OnDone = Callable[[Outcome], None]


class LocalExecutor:
    name = "local"

    def run(self, steps: Sequence[Step], on_done: OnDone | None = None) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        later = {s.name for s in steps}
        for step in steps:  # callers list a step after the steps it depends on
            later.discard(step.name)
            if any(d in later for d in step.deps):
                raise ValueError(f"step {step.name} is listed before a step it depends on ({step.deps})")
            outcomes[step.name] = execute(step)
            if on_done:
                on_done(outcomes[step.name])
        return outcomes

    def close(self) -> None:
        pass


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


def make_executor(name: str = "local", *, ray_address: str | None = None, num_cpus: int | None = None):
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_address, num_cpus)
    raise ValueError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")
