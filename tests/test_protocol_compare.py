"""The weight fingerprints a run records (for ``regurg-bench compare``). The run is the session's one tiny
protocol run (tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


@pytest.fixture
def run(tiny_protocol_run) -> Path:
    return tiny_protocol_run[1]


def test_the_run_records_the_fingerprints_of_the_weights_it_used(run):
    from regurg_bench.leaderboard.schema import RunResults
    from regurg_bench.protocol.fingerprints import folder_fingerprint

    results = _results(run)
    fp = results["fingerprints"]
    assert fp["base_model"] is None  # scratch:test: every student initialises itself, no shared checkpoint
    assert fp["generators"] == {"scripted": None, "scripted2": None}  # not checkpoints
    assert set(fp["students"]) == set(results["students"])
    for name, s in results["students"].items():
        assert fp["students"][name] == folder_fingerprint(run / s["model_id"]) and fp["students"][name].startswith("sha256:")
    assert RunResults.model_validate(results).fingerprints.students == fp["students"]
    del results["fingerprints"]  # results scored before fingerprints were recorded stay valid
    assert RunResults.model_validate(results).fingerprints is None


def test_a_self_generating_base_model_and_its_generator_have_one_fingerprint(tiny_model_dir, tmp_path):
    """A checkpoint generator is named by the hash its signature records (the teacher of the default is the
    base model: the same string); Apertium and scratch bases have none; a LoRA adapter folder is hashed too."""
    import shutil

    from regurg_bench.generation.teacher_backend import TeacherGenerator
    from regurg_bench.protocol.fingerprints import (
        base_model_fingerprint,
        folder_fingerprint,
        generator_fingerprint,
    )

    base = base_model_fingerprint(str(tiny_model_dir))
    assert base is not None and base.startswith("sha256:")
    assert generator_fingerprint(TeacherGenerator(tiny_model_dir).signature().to_dict()) == base
    assert generator_fingerprint({"kind": "apertium", "model": "eng-spa", "revision": "3.9.1"}) is None
    assert base_model_fingerprint("scratch:tiny") is None and folder_fingerprint(tmp_path / "missing") is None
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    weights = next(tiny_model_dir.glob("*.safetensors"))
    shutil.copy(weights, adapter / "adapter_model.safetensors")
    first = folder_fingerprint(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert first and first.startswith("sha256:") and folder_fingerprint(adapter) != first
