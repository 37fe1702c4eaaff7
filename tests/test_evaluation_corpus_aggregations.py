"""The regurg_mt tasks' corpus aggregations: lm-eval's built-in numbers exactly, a cheap stderr."""

from __future__ import annotations

import math

import pytest
from lm_eval.api import metrics as lm_metrics

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.evaluation import corpus_aggregations as agg

OURS = {"bleu": agg.bleu_corpus, "chrf": agg.chrf_corpus, "chrf++": agg.chrfpp_corpus, "ter": agg.ter_corpus}
BUILTIN = {"bleu": lm_metrics.bleu, "chrf": lm_metrics.chrf, "chrf++": lm_metrics.chrfpp, "ter": lm_metrics.ter}


@pytest.fixture(scope="module")
def items(tmp_path_factory) -> list[list[str]]:
    """[reference, prediction] items as lm-eval builds them, on real test verses: good, truncated, copied
    source, a looping output, empty."""
    pairs = load_bible_pairs("en-es", "test")[:120]
    out = []
    for i, p in enumerate(pairs):
        words = p.target.split()
        hyp = [p.target, " ".join(words[: len(words) // 2]), p.source, " ".join([words[0]] * 60), ""][i % 5]
        out.append([p.target, hyp])
    return out


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("metric", sorted(OURS))
def test_corpus_score_equals_lm_evals_builtin_aggregation(items, metric):
    assert OURS[metric](items) == BUILTIN[metric](items)  # the same float, bit for bit


def test_stderr_is_deterministic_bounded_and_close_to_lm_evals_bootstrap(items):
    se = agg.bleu_corpus.regurg_stderr(items, 100_000)
    assert math.isfinite(se) and se > 0
    assert se == agg.bleu_corpus.regurg_stderr(items, 100_000)
    # lm-eval's own bootstrap (100 corpus re-scores, single process) estimates the same quantity
    theirs = lm_metrics.sample_stddev(lm_metrics._bootstrap_internal_no_mp(lm_metrics.bleu, items, 100))
    assert 0.6 < se / theirs < 1.6


def test_lm_evals_stderr_for_metric_asks_our_aggregation():
    """The start-up hook (installed in this interpreter by the .pth file) patches lm-eval."""
    from lm_eval.api.metrics import stderr_for_metric

    fn = stderr_for_metric(agg.ter_corpus, 100)
    assert fn is not None and fn.__code__ is not lm_metrics.bootstrap_stderr.__code__
    assert stderr_for_metric(agg.ter_corpus, 0) is None  # bootstrap_iters=0 still means no stderr
    assert stderr_for_metric(lm_metrics.mean, 100) is lm_metrics.mean_stderr  # others untouched
