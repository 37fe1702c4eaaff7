"""The regurg_mt tasks' BLEU/chrF/chrF++/TER aggregations: lm-eval's numbers, cheap standard errors.

lm-eval's built-in ``bleu``/``chrf``/``chrf++``/``ter`` aggregations compute ``sacrebleu.corpus_*`` on
the task's ``[reference, prediction]`` items. Their standard error is a bootstrap that re-scores the
whole corpus up to 100 times (TER: ~5 s a time on 1,004 sentences), so a plain ``lm_eval`` run of one
direction sat 10+ minutes in "bootstrapping for stddev".

The functions below give the **same corpus score** (sacrebleu's ``corpus_score`` sums the per-sentence
sufficient statistics and scores the sum; so do they, on the same statistics, through
:mod:`regurg_bench.scoring.sentence_stats`, which also caches them for the protocol's scoring), and
carry a ``regurg_stderr`` that lm-eval's ``stderr_for_metric`` calls (patched by the start-up hook,
:mod:`regurg_bench._lm_eval_hook`): a bootstrap over the same statistics with the resamples lm-eval asks
for (it caps metrics named bleu/chrf/chrf++/ter at 100), at most :data:`MAX_STDERR_RESAMPLES`, each a sum
and one score computation (milliseconds). Without the hook lm-eval reports their stderr as "N/A".
"""

from __future__ import annotations

import numpy as np

from regurg_bench.scoring.bootstrap import score_from_stats
from regurg_bench.scoring.sentence_stats import cached_sentence_stats

#: at most this many resamples per standard error (lm-eval asks for 100,000; it caps its own corpus
#: metrics at 100 because each costs a corpus re-score; a resample here costs a sum)
MAX_STDERR_RESAMPLES = 1000
#: the standard errors' random stream (fixed: the same items give the same stderr)
STDERR_SEED = 1234


def _refs_and_hyps(items: list) -> tuple[list[str], list[str]]:
    """lm-eval's ``_sacreformat`` for one reference per item: ``[reference, prediction]`` pairs."""
    refs, hyps = [], []
    for ref, hyp in items:
        if not isinstance(ref, str):  # one reference per item in our tasks; lm-eval would nest several
            (ref,) = ref
        if not isinstance(hyp, str):
            (hyp,) = hyp
        refs.append(ref)
        hyps.append(hyp)
    return refs, hyps


def corpus_value(metric: str, items: list) -> float:
    """The corpus score lm-eval's built-in aggregation ``metric`` gives these items."""
    refs, hyps = _refs_and_hyps(items)
    return score_from_stats(metric, cached_sentence_stats(metric, hyps, refs).sum(axis=0))


def bootstrap_stderr(metric: str, items: list, iters: int) -> float:
    """Standard deviation (ddof 1, as lm-eval's) of the corpus score over ``min(iters,
    MAX_STDERR_RESAMPLES)`` resamples of the sentences, from their sufficient statistics."""
    refs, hyps = _refs_and_hyps(items)
    stats = cached_sentence_stats(metric, hyps, refs)
    n = min(int(iters), MAX_STDERR_RESAMPLES)
    rng = np.random.default_rng(STDERR_SEED)
    counts = rng.multinomial(len(stats), np.full(len(stats), 1.0 / len(stats)), size=n)
    summed = counts.astype(np.float64) @ stats  # integer-valued statistics: exact sums
    values = [score_from_stats(metric, row) for row in summed]
    return float(np.std(values, ddof=1))


def _aggregation(metric: str):
    def aggregate(items: list) -> float:
        return corpus_value(metric, items)

    aggregate.__name__ = aggregate.__qualname__ = f"{metric.replace('+', 'p')}_corpus"
    aggregate.__doc__ = f"Corpus {metric} exactly as lm-eval's built-in aggregation, from cached sentence statistics."
    aggregate.regurg_stderr = lambda items, iters: bootstrap_stderr(metric, items, iters)
    return aggregate


bleu_corpus = _aggregation("bleu")
chrf_corpus = _aggregation("chrf")
chrfpp_corpus = _aggregation("chrf++")
ter_corpus = _aggregation("ter")
