"""Shared fixtures: real data from the embedded corpus, a real tiny HF model built from a config."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from filelock import FileLock

# Everything runs offline: a test that reached for the hub would fail here, as it would in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Under pytest-xdist (scripts/test.sh runs one worker per core) each worker gets its share of the cores
# for torch's intra-op threads: workers that each spun up all cores' OpenMP threads would oversubscribe
# the machine many times over. Subprocesses the tests start inherit it. Tests that pin a thread count
# (bit-identity at 1, 2, 3 threads) still set it themselves.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _share = len(os.sched_getaffinity(0)) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))
# Protocol runs in the tests compute their steps in the test's own process (the suite already runs one xdist
# worker per core); the tests of the local executor's worker processes ask for them.
os.environ.setdefault("REGURG_BENCH_WORKERS", "1")
# Test doubles (the `scripted` generator) are plug-ins, never in the production registries; the variable
# reaches the subprocesses tests start (`regurg-bench run`, cache workers) too.
_plugins = [m for m in os.environ.get("REGURG_BENCH_PLUGINS", "").split(",") if m]
os.environ["REGURG_BENCH_PLUGINS"] = ",".join(dict.fromkeys([*_plugins, "regurg_bench.testing"]))


@contextmanager
def built_once(tmp_path_factory, name: str) -> Iterator[Path]:
    """The folder of a session fixture, built once per test session even under pytest-xdist.

    Each xdist worker is its own session and would build every session fixture again (minutes for a
    protocol run). All workers share the parent of their base temp folder: the first to take the lock
    builds into ``<shared>/<name>``, the others wait and then reuse what it wrote. Without xdist this is
    a plain folder under the session's temp folder. Fixture data is read-only; tests change copies.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    path = base / name
    base.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        yield path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tokenizer trained on the embedded corpus + a tiny randomly initialised Llama, saved in HF format.

    Untrained on purpose: the tests check plumbing and metric arithmetic, not translation quality.
    """
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.models.scratch import build_scratch_model

    with built_once(tmp_path_factory, "tiny-llama") as out:
        if (out / "config.json").exists():
            return out
        texts = []
        for direction in ("en-es", "en-fr"):
            for pair in load_bible_pairs(direction, "train")[:3000]:
                texts += [pair.source, pair.target]
        return build_scratch_model(texts, out, preset="test", seed=0)


@pytest.fixture(scope="session")
def tiny_protocol_run(tmp_path_factory):
    """One real run of tests/data/tiny_protocol.yaml (scripted generators, the ``scratch:test`` student, 5 test
    sentences, two seeds; a few minutes), shared by every test file that needs a finished run (protocol,
    compare, verify): ``(cfg, run folder, results, messages)``. A test that changes the run's files works
    on a copy."""
    from regurg_bench.protocol.config import load_protocol_config
    from regurg_bench.protocol.run import run_protocol

    cfg = load_protocol_config(Path(__file__).parent / "data" / "tiny_protocol.yaml")
    with built_once(tmp_path_factory, "protocol") as tmp:
        out, said = tmp / "run", tmp / "messages.json"
        if said.exists():  # another xdist worker ran it: a re-run only reads run_done.json
            return cfg, out, run_protocol(cfg, out, say=lambda _msg: None), json.loads(said.read_text())
        messages: list[str] = []
        results = run_protocol(cfg, out, say=messages.append)
        said.write_text(json.dumps(messages), encoding="utf-8")
        return cfg, out, results, messages


@pytest.fixture(scope="session")
def tiny_collapse_board(tmp_path_factory):
    """One real run of tests/data/tiny_collapse.yaml on the full published test set (the leaderboard's rule; the
    main matrix and both generations of every mode, two seeds; about a minute) submitted to a board:
    ``(run folder, results, entry file)``. Shared by the leaderboard tests that need a collapse curve (entry,
    migration, page); a test that changes a file works on a copy."""
    import yaml

    from regurg_bench.leaderboard.submit import submit
    from regurg_bench.protocol.config import load_protocol_config
    from regurg_bench.protocol.run import run_protocol

    with built_once(tmp_path_factory, "collapse-board") as tmp:
        out, entry = tmp / "run", tmp / "entry.txt"
        if entry.exists():  # another xdist worker ran and submitted it
            return out, run_protocol(load_protocol_config(tmp / "cfg.yaml"), out, say=lambda _msg: None), \
                Path(entry.read_text(encoding="utf-8"))
        tmp.mkdir(parents=True, exist_ok=True)
        cfg = yaml.safe_load((Path(__file__).parent / "data" / "tiny_collapse.yaml").read_text(encoding="utf-8"))
        cfg["eval"].update(limit=None, batch_size=64)
        (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
        results = run_protocol(load_protocol_config(tmp / "cfg.yaml"), out, say=lambda _msg: None)
        path = submit(out, "demo", tmp / "boards", "collapse-tiny")
        entry.write_text(str(path), encoding="utf-8")
        return out, results, path


@pytest.fixture(scope="session")
def needs_vllm() -> None:
    """Skip unless vLLM imports; under REGURG_BENCH_REQUIRE_VLLM=1 (CI, in the environment of
    scripts/setup_vllm.sh) a missing vLLM fails instead. A fixture rather than a module-level
    importorskip, so that deselecting the `vllm` marker (-m "not vllm") reports no skips."""
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        if os.environ.get("REGURG_BENCH_REQUIRE_VLLM") == "1":
            pytest.fail(f"REGURG_BENCH_REQUIRE_VLLM=1 but vLLM does not import: {err}")
        pytest.skip(f"vLLM is not installed ({err}); bash scripts/setup_vllm.sh builds .venv-vllm")
