"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1 serving a tiny HF Llama.

The server (regurg_bench.testing.openai_server) really runs the model; it can also answer with
errors or stall, and it counts requests and the peak number in flight.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("openai")

from regurg_bench.corpora.base import Pair
from regurg_bench.generation import (
    GenerationCache,
    OpenAIGenerator,
    TransformersGenerator,
    build_generator,
    generate_targets,
)
from regurg_bench.testing.generators import scripted_model
from regurg_bench.testing.openai_server import LoopbackServer

MODEL = "loopback-model"


@pytest.fixture(scope="module")
def sources() -> list[str]:
    from regurg_bench.corpora.bible import load_bible_pairs

    return [p.source for p in load_bible_pairs("en-es", "train")[100:109]]


def _client(server: LoopbackServer, **options) -> OpenAIGenerator:
    return OpenAIGenerator(MODEL, base_url=server.base_url, **({"max_tokens": 10} | options))


def test_completions_serve_the_real_model_with_a_concurrency_limit(tiny_model_dir, sources, monkeypatch):
    monkeypatch.setenv("LOOPBACK_KEY", "sekrit")
    with LoopbackServer(tiny_model_dir, api_key="sekrit", delay_seconds=0.05) as server:
        gen = _client(server, api_key_env="LOOPBACK_KEY", concurrency=3)
        results = gen.generate(sources, "en", "es")
        stats = server.stats
        assert stats.generation_requests == len(sources)
        assert stats.max_in_flight == 3  # the semaphore held it at the limit (and it was reached)
        wrong = _client(server, api_key_env="NO_SUCH_VARIABLE_SET").generate(sources[:1], "en", "es")[0]
    # Over HTTP, the same greedy completions as the transformers backend on the same checkpoint.
    local = TransformersGenerator(tiny_model_dir, max_new_tokens=10).generate(sources, "en", "es")
    assert [r.text for r in results] == [r.text for r in local]
    assert all(r.ok and r.n_tokens == 10 for r in results)
    # Without the key the placeholder is sent; the server refuses it and that is a recorded failure.
    assert wrong.status == "failed" and wrong.reason.startswith("HTTP 401")


def test_chat_mode_takes_the_first_line(tiny_model_dir, tmp_path, sources):
    folder = tmp_path / "scripted"
    expected = scripted_model(tiny_model_dir, folder, [" la", " tierra", " el"]).strip()
    with LoopbackServer(folder) as server:
        results = _client(server, mode="chat", max_tokens=12).generate(sources[:3], "en", "es")
        prompt = server.stats.arrivals[0][1]
    # The scripted model repeats "la tierra el\n" until max_tokens; the target is the first line.
    assert [r.text for r in results] == [expected] * 3
    assert "Translate the following English text into Spanish" in prompt and "\\nSpanish:" in prompt


def test_server_errors_are_retried_with_backoff(tiny_model_dir, sources):
    with LoopbackServer(tiny_model_dir, fail_first=2) as server:
        results = _client(server, concurrency=1, max_retries=3).generate(sources[:2], "en", "es")
        arrivals = [t for t, _ in server.stats.arrivals]
        assert server.stats.failures_sent == 2 and server.stats.generation_requests == 4
    assert all(r.ok for r in results)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    # openai's backoff: ~0.5 s then ~1 s (with up to 25 % jitter) before the 1st and 2nd retries.
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps


def test_a_server_that_keeps_failing_ends_as_recorded_failures(tiny_model_dir, sources, tmp_path):
    pairs = [Pair(f"p{i}", s, "-", "en", "es") for i, s in enumerate(sources[:3])]
    with LoopbackServer(tiny_model_dir, fail_first=10_000) as server:
        gen = build_generator("openai", model=MODEL, base_url=server.base_url, max_retries=1, max_tokens=8)
        cache = GenerationCache(tmp_path)
        out = list(generate_targets(gen, pairs, cache, batch_size=8, progress=False))
        assert server.stats.generation_requests == 2 * len(pairs)  # each tried twice
    assert all(r.status == "failed" and r.target is None for _, r in out)
    assert out[0][1].reason == "HTTP 500 after 2 attempt(s): injected failure (LoopbackServer fail_first)"
    summary = cache.summary(gen.signature())
    assert summary.failed == 3 and summary.ok == 0 and not summary.exhausted


def test_stalled_requests_time_out_as_recorded_failures(tiny_model_dir, sources):
    with LoopbackServer(tiny_model_dir, stall_seconds=20) as server:
        results = _client(server, timeout=0.5, max_retries=1, concurrency=4).generate(sources[:4], "en", "es")
        assert server.stats.stalls == 8  # 4 requests, each tried twice
    # A client that waited out the 20 s stall would have got an answer: failing with the timeout reason
    # shows it gave up after timeout x attempts (how long that takes: benchmarks/resume_speed.py).
    assert all(r.status == "failed" for r in results)
    assert results[0].reason == "timeout: no answer within 0.5 s (2 attempt(s))"


def test_a_stall_then_recovery_succeeds_on_retry(tiny_model_dir, sources):
    with LoopbackServer(tiny_model_dir, stall_seconds=20, stall_first=1) as server:
        (result,) = _client(server, timeout=0.5, max_retries=2, concurrency=1).generate(sources[:1], "en", "es")
        assert server.stats.generation_requests == 2
    assert result.ok


def test_signature_records_the_endpoint_not_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-appear")
    gen = OpenAIGenerator("gpt-x", base_url="http://127.0.0.1:9/v1/", mode="chat", model_revision="2024-08-06")
    sig = gen.signature()
    assert sig.kind == "openai" and sig.model == "gpt-x" and sig.revision == "2024-08-06"
    assert sig.options["base_url"] == "http://127.0.0.1:9/v1" and sig.options["mode"] == "chat"
    assert "sk-should-not-appear" not in str(sig.to_dict())
    assert sig.hash != OpenAIGenerator("gpt-x", base_url="http://127.0.0.1:9/v1").signature().hash
    assert sig.hash == OpenAIGenerator("gpt-x", base_url="http://127.0.0.1:9/v1", mode="chat",
                                       model_revision="2024-08-06", concurrency=64).signature().hash
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    from regurg_bench.generation import GenerationError

    with pytest.raises(GenerationError, match="OPENAI_API_KEY"):
        OpenAIGenerator("gpt-x").generate(["Hello."], "en", "es")


def test_unreachable_server_is_a_recorded_failure():
    # Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    (result,) = OpenAIGenerator(MODEL, base_url="http://127.0.0.1:9/v1", max_retries=0).generate(
        ["Hello."], "en", "es")
    assert result.status == "failed" and result.reason.startswith("connection error")


def test_loopback_server_routes(tiny_model_dir):
    import json
    import urllib.request

    with LoopbackServer(tiny_model_dir) as server:
        with urllib.request.urlopen(server.base_url + "/models") as resp:
            assert json.load(resp)["data"][0]["id"] == MODEL
        req = urllib.request.Request(server.base_url + "/completions", method="POST",
                                     data=json.dumps({"model": MODEL, "prompt": ["a", "b"], "max_tokens": 3,
                                                      "temperature": 0}).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            body = json.load(resp)
        assert len(body["choices"]) == 2 and body["usage"]["completion_tokens"] == 6
    assert isinstance(Path(tiny_model_dir), Path)
