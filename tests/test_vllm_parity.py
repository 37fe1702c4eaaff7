"""vLLM (the CPU build) against transformers on a real pretrained checkpoint, for real.

SmolLM2-135M-Instruct (the embedded registry model, float32) translates the same Bible test verses
through the ``vllm`` and the ``transformers`` generators, greedy; then ``regurg_mt_en-es`` runs through
lm-eval's ``vllm`` and ``hf`` backends. Greedy outputs must be identical for >= 95 % of sentences and
corpus BLEU / chrF within 0.5. The full comparison (more sentences, throughput) is
``benchmarks/vllm_parity.py``.

Skipped where vLLM is not installed, unless REGURG_BENCH_REQUIRE_VLLM=1 (CI sets it and runs this
file in the environment of ``scripts/setup_vllm.sh``), which turns a missing vLLM into a failure.
"""

from __future__ import annotations

import json
import os

import pytest

from regurg_bench.generation import build_generator
from regurg_bench.generation.parity import compare_outputs

pytestmark = [pytest.mark.slow, pytest.mark.vllm, pytest.mark.usefixtures("needs_vllm")]  # two vLLM engines (~30-80 s each on 2 cores)

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU (the default is large)

N_SENTENCES = 16
MAX_NEW_TOKENS = 48
MIN_IDENTICAL = 0.95
MAX_METRIC_DELTA = 0.5


@pytest.fixture(scope="module")
def smollm2():
    from regurg_bench.models.registry_models import embedded_model_path

    return str(embedded_model_path("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def verses():
    from regurg_bench.corpora.bible import load_bible_pairs

    return load_bible_pairs("en-es", "test")[:N_SENTENCES]


def _texts(gen, verses) -> list[str]:
    try:
        return [r.text or "" for r in gen.generate([p.source for p in verses], "en", "es")]
    finally:
        gen.close()


def test_vllm_and_transformers_generators_agree_on_smollm2(smollm2, verses):
    hf = _texts(build_generator("transformers", model=smollm2, dtype="float32", batch_size=8,
                                max_new_tokens=MAX_NEW_TOKENS, num_threads=2), verses)
    vl = _texts(build_generator("vllm", model=smollm2, dtype="float32", max_model_len=512,
                                max_new_tokens=MAX_NEW_TOKENS, engine_kwargs={"enforce_eager": True}), verses)
    assert sum(bool(t) for t in hf) >= N_SENTENCES // 2  # the model writes something: a real comparison
    p = compare_outputs(vl, hf, [v.target for v in verses])
    print("generator parity:", json.dumps(p.as_dict(), ensure_ascii=False))
    assert p.identical_rate >= MIN_IDENTICAL, p.differing
    assert p.bleu_delta <= MAX_METRIC_DELTA and p.chrf_delta <= MAX_METRIC_DELTA, p.as_dict()


def test_lm_eval_vllm_backend_matches_hf_backend(smollm2, tmp_path):
    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    def evaluate(model: str, model_args: str) -> tuple[dict, list[str], list[str]]:
        out = tmp_path / model
        results = run_eval(EvalRequest(model=model, model_args=model_args, tasks=["regurg_mt_en-es"],
                                       limit=N_SENTENCES, batch_size=8, output_path=str(out), log_samples=True,
                                       gen_kwargs=f"max_gen_toks={MAX_NEW_TOKENS}", bootstrap_iters=0))
        rows = [json.loads(line) for line in next(out.rglob("samples_regurg_mt_en-es_*.jsonl")).open()]
        rows.sort(key=lambda r: r["doc_id"])
        return (results["results"]["regurg_mt_en-es"], [r["filtered_resps"][0] for r in rows],
                [r["target"] for r in rows])

    hf, hf_out, refs = evaluate("hf", f"pretrained={smollm2},dtype=float32")
    vl, vl_out, _ = evaluate("vllm", f"pretrained={smollm2},dtype=float32,max_model_len=512,enforce_eager=True")
    assert len(vl_out) == N_SENTENCES
    p = compare_outputs(vl_out, hf_out, refs)
    print("lm-eval parity:", json.dumps(p.as_dict(), ensure_ascii=False))
    assert p.identical_rate >= MIN_IDENTICAL, p.differing
    for metric in ("bleu,none", "chrf,none"):
        assert abs(vl[metric] - hf[metric]) <= MAX_METRIC_DELTA, (metric, vl[metric], hf[metric])
