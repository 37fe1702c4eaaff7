"""The environment ``cpu_engine_defaults`` gives vLLM on a machine without a GPU (no vLLM needed: what is set,
when, and what a ``vllm serve`` child inherits). The engines themselves run under it in the vLLM tests."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from regurg_bench.generation import vllm_backend
from regurg_bench.generation.vllm_backend import (
    IN_PROCESS_ENV,
    child_environment,
    cpu_engine_defaults,
    preserved_rng,
)

_VARS = ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_CI_ENV", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU",
         IN_PROCESS_ENV)


@pytest.fixture
def clean_env(monkeypatch):
    for name in _VARS:  # set, then deleted: monkeypatch then removes what the code under test sets
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    monkeypatch.setattr(vllm_backend, "_set_by_us", {})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return monkeypatch


def _cpus(monkeypatch, n: int) -> None:
    monkeypatch.setattr(vllm_backend.os, "sched_getaffinity", lambda pid: set(range(n)))


def test_small_machine_runs_the_engine_in_this_process(clean_env):
    _cpus(clean_env, 2)
    clean_env.setattr(vllm_backend, "_torch_threads", lambda: 2)
    set_now = cpu_engine_defaults()
    assert set_now[IN_PROCESS_ENV] == "0"
    assert set_now["VLLM_CPU_OMP_THREADS_BIND"] == "0,1" and set_now["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"
    # a `vllm serve` child keeps vLLM's processes; everything else is inherited
    child = child_environment()
    assert IN_PROCESS_ENV not in child and child["VLLM_CPU_OMP_THREADS_BIND"] == "0,1"


def test_no_in_process_engine_where_it_would_change_this_process_threads(clean_env):
    """torch on one thread (e.g. OMP_NUM_THREADS=1) while the binding takes 2 CPUs: an engine in this process
    would leave torch on 2 threads for whatever runs after it (training), so vLLM keeps its processes."""
    _cpus(clean_env, 2)
    clean_env.setattr(vllm_backend, "_torch_threads", lambda: 1)
    assert IN_PROCESS_ENV not in cpu_engine_defaults()


def test_large_machines_and_users_choices_keep_vllms_own_setup(clean_env):
    _cpus(clean_env, 16)
    clean_env.setattr(vllm_backend, "_torch_threads", lambda: 16)
    set_now = cpu_engine_defaults()
    assert IN_PROCESS_ENV not in set_now and "VLLM_CPU_OMP_THREADS_BIND" not in set_now
    clean_env.delenv("VLLM_CPU_KVCACHE_SPACE")
    clean_env.delenv("VLLM_CPU_CI_ENV")
    _cpus(clean_env, 2)
    clean_env.setattr(vllm_backend, "_torch_threads", lambda: 2)
    clean_env.setenv("VLLM_CPU_OMP_THREADS_BIND", "auto")  # the user's binding: none of ours, no in-process
    assert IN_PROCESS_ENV not in cpu_engine_defaults()
    clean_env.delenv("VLLM_CPU_OMP_THREADS_BIND")
    clean_env.setenv(IN_PROCESS_ENV, "1")  # the user's choice stays, and reaches the child
    cpu_engine_defaults()
    assert child_environment()[IN_PROCESS_ENV] == "1"


def test_preserved_rng_puts_back_every_global_generator():
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    expected = random.random(), np.random.rand(), torch.rand(1).item()
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    with preserved_rng():
        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)  # what an engine built in this process does
        random.random()
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_one_engine_at_a_time_in_this_process(clean_env):
    """vLLM keeps one model-parallel state per process: starting an engine stops the others this process
    holds (each restarts when next used); with engines in their own processes nothing is stopped."""
    from regurg_bench.generation.vllm_backend import claim_engine, release_engine

    stopped = []
    clean_env.setattr(vllm_backend, "_live_engines", {})
    clean_env.setenv(IN_PROCESS_ENV, "0")
    claim_engine("a", lambda: stopped.append("a"))
    claim_engine("a", lambda: stopped.append("a"))  # the same owner again: nothing to stop
    claim_engine("b", lambda: stopped.append("b"))
    assert stopped == ["a"] and list(vllm_backend._live_engines) == ["b"]
    release_engine("b")
    claim_engine("c", lambda: stopped.append("c"))
    assert stopped == ["a"]
    clean_env.setenv(IN_PROCESS_ENV, "1")
    claim_engine("d", lambda: stopped.append("d"))
    assert stopped == ["a"] and list(vllm_backend._live_engines) == ["c"]


def test_a_build_with_two_vllm_generators_keeps_vllms_processes(clean_env, tmp_path):
    """The builder asks each generator in turn for every batch: two engines must stay up together, which one
    process cannot hold, so such a build gives vLLM its processes back (before any engine starts)."""
    from regurg_bench.builders.config import BuildConfig
    from regurg_bench.builders.targets import make_target_generators

    _cpus(clean_env, 2)
    clean_env.setattr(vllm_backend, "_torch_threads", lambda: 2)
    cpu_engine_defaults()
    assert vllm_backend.os.environ[IN_PROCESS_ENV] == "0"
    one = BuildConfig(corpus="bible:en-es:dev", generators={"a": {"kind": "vllm", "options": {"model": "/m/a"}},
                                                            "t": {"kind": "apertium", "options": {}}})
    make_target_generators(one, tmp_path)
    assert vllm_backend.os.environ[IN_PROCESS_ENV] == "0"
    two = BuildConfig(corpus="bible:en-es:dev", generators={"a": {"kind": "vllm", "options": {"model": "/m/a"}},
                                                            "b": {"kind": "vllm", "options": {"model": "/m/b"}}})
    make_target_generators(two, tmp_path)
    assert vllm_backend.os.environ[IN_PROCESS_ENV] == "1"
    cpu_engine_defaults()  # a later engine start keeps it
    assert vllm_backend.os.environ[IN_PROCESS_ENV] == "1"
    clean_env.setenv(IN_PROCESS_ENV, "0")  # a user's own choice is left alone
    vllm_backend._set_by_us.clear()
    make_target_generators(two, tmp_path)
    assert vllm_backend.os.environ[IN_PROCESS_ENV] == "0"
