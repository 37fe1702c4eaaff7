"""The ``vllm serve`` launcher's command line and the ``openai`` generator's ``launch_vllm`` option, without
vLLM (the real server runs in tests/test_generation_vllm_serve.py)."""

from __future__ import annotations

import sys

import pytest

from regurg_bench.generation import build_generator
from regurg_bench.generation.vllm_server import VLLMServer, VLLMServerError


def test_command_maps_options_to_vllm_serve_flags():
    server = VLLMServer("/models/m", served_name="m", port=8123,
                        options={"dtype": "float32", "max_model_len": 512, "enforce_eager": True,
                                 "trust_remote_code": False, "kv_transfer_config": {"a": 1}})
    cmd = server.command()
    assert cmd[:5] == [sys.executable, "-m", "vllm.entrypoints.cli.main", "serve", "/models/m"]
    assert cmd[5:11] == ["--host", "127.0.0.1", "--port", "8123", "--served-model-name", "m"]
    assert cmd[11:] == ["--dtype", "float32", "--max-model-len", "512", "--enforce-eager",
                        "--kv-transfer-config", '{"a": 1}']  # False flags are left out
    assert server.base_url == "http://127.0.0.1:8123/v1"
    with pytest.raises(VLLMServerError, match="not started"):
        _ = VLLMServer("/models/m").base_url


def test_launch_vllm_needs_a_checkpoint():
    with pytest.raises(ValueError, match="launch_vllm needs 'checkpoint'"):
        build_generator("openai", model="m", launch_vllm={"dtype": "float32"})


def test_launch_vllm_signature_names_the_checkpoint_not_the_url(tiny_model_dir, tmp_path):
    a = build_generator("openai", model="m", launch_vllm={"checkpoint": str(tiny_model_dir), "dtype": "float32"})
    sig = a.signature()
    assert sig.options["base_url"] == "launched:vllm-serve" and sig.revision.startswith("sha256:")
    assert sig.info["launch_vllm"] == {"checkpoint": str(tiny_model_dir.resolve()), "dtype": "float32"}
    # another checkpoint is another generator; a bad one is an error naming it
    bad = build_generator("openai", model="m", launch_vllm={"checkpoint": str(tmp_path / "nope")})
    with pytest.raises(Exception, match="nope"):
        bad.signature()
