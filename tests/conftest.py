"""Shared fixtures: real data from the embedded corpus, a real tiny HF model built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Everything runs offline: a test that reached for the hub would fail here, as it would in CI.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Test doubles (the `scripted` generator) are plug-ins, never in the production registries; the variable
# reaches the subprocesses tests start (`regurg-bench run`, cache workers) too.
_plugins = [m for m in os.environ.get("REGURG_BENCH_PLUGINS", "").split(",") if m]
os.environ["REGURG_BENCH_PLUGINS"] = ",".join(dict.fromkeys([*_plugins, "regurg_bench.testing"]))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tokenizer trained on the embedded corpus + a tiny randomly initialised Llama, saved in HF format.

    Untrained on purpose: the tests check plumbing and metric arithmetic, not translation quality.
    """
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.models.scratch import build_scratch_model

    texts = []
    for direction in ("en-es", "en-fr"):
        for pair in load_bible_pairs(direction, "train")[:3000]:
            texts += [pair.source, pair.target]
    return build_scratch_model(texts, tmp_path_factory.mktemp("tiny-llama"), preset="test", seed=0)


@pytest.fixture(scope="session")
def tiny_protocol_run(tmp_path_factory):
    """One real run of tests/data/tiny_protocol.yaml (scripted generators, the ``scratch:test`` student, 5 test
    sentences, two seeds; a few minutes), shared by every test file that needs a finished run (protocol,
    compare, verify): ``(cfg, run folder, results, messages)``. A test that changes the run's files works
    on a copy."""
    from regurg_bench.protocol.config import load_protocol_config
    from regurg_bench.protocol.run import run_protocol

    tmp = tmp_path_factory.mktemp("protocol")
    cfg = load_protocol_config(Path(__file__).parent / "data" / "tiny_protocol.yaml")
    out = tmp / "run"
    messages: list[str] = []
    results = run_protocol(cfg, out, say=messages.append)
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

    tmp = tmp_path_factory.mktemp("collapse-board")
    cfg = yaml.safe_load((Path(__file__).parent / "data" / "tiny_collapse.yaml").read_text(encoding="utf-8"))
    cfg["eval"].update(limit=None, batch_size=64)
    (tmp / "cfg.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    out = tmp / "run"
    results = run_protocol(load_protocol_config(tmp / "cfg.yaml"), out, say=lambda _msg: None)
    return out, results, submit(out, "demo", tmp / "boards", "collapse-tiny")


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
