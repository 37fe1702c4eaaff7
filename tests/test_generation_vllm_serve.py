"""The ``openai`` generator against a real ``vllm serve`` on loopback, started and stopped by the
generator itself (``launch_vllm``), as ``--preset paper-smoke`` runs it.

Skipped where vLLM is not installed, unless REGURG_BENCH_REQUIRE_VLLM=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from regurg_bench.generation import build_generator
from regurg_bench.generation.parity import compare_outputs
from regurg_bench.generation.vllm_server import VLLMServer

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.usefixtures("needs_vllm")]  # one `vllm serve` start (~40-90 s on 2 cores)

N = 8
MAX_TOKENS = 48


@pytest.fixture(scope="module")
def verses():
    from regurg_bench.corpora.bible import load_bible_pairs

    return load_bible_pairs("es-en", "test")[:N]


def test_openai_generator_launches_vllm_serve_and_matches_transformers(verses):
    from regurg_bench.models.registry_models import embedded_model_path

    path = embedded_model_path("smollm2-135m-instruct")
    launch = {"checkpoint": "smollm2-135m-instruct", "dtype": "float32", "max_model_len": 512,
              "enforce_eager": True}
    gen = build_generator("openai", model="smollm2", max_tokens=MAX_TOKENS, concurrency=4, launch_vllm=launch)
    sig = gen.signature()
    # the checkpoint's content hash, not the ephemeral loopback URL, identifies the generator
    assert sig.revision.startswith("sha256:") and sig.options["base_url"] == "launched:vllm-serve"
    try:
        served = gen.generate([v.source for v in verses], "es", "en")
        url = gen.base_url
        assert url.startswith("http://127.0.0.1:")
        assert not [r.reason for r in served if r.status == "failed"]
    finally:
        gen.close()
    with pytest.raises((urllib.error.URLError, OSError)):  # stopped: nothing listens any more
        urllib.request.urlopen(f"{url}/models", timeout=2)
    assert gen.signature().hash == sig.hash  # stopping changes nothing the cache keys on

    ref = build_generator("transformers", model=str(path), dtype="float32", batch_size=8,
                          max_new_tokens=MAX_TOKENS, num_threads=2)
    try:
        local = [r.text or "" for r in ref.generate([v.source for v in verses], "es", "en")]
    finally:
        ref.close()
    p = compare_outputs([r.text or "" for r in served], local, [v.target for v in verses])
    assert p.identical_rate >= 0.95 and p.bleu_delta <= 0.5 and p.chrf_delta <= 0.5, p.as_dict()


def test_server_start_failure_names_the_model_and_quotes_its_log(tmp_path):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    with pytest.raises(RuntimeError, match="not-a-model") as err:
        VLLMServer(bad, startup_timeout=300).start()
    assert "log ends" in str(err.value)
