"""Paired bootstrap over test sentences of sacrebleu *corpus* scores, jointly for many conditions.

Every replicate draws one multiset of test-sentence indices and scores **every** condition (and
every seed) on that same draw, so differences between conditions are paired. Corpus scores are
recomputed exactly, from sacrebleu's per-sentence sufficient statistics (the method of
``sacrebleu.significance``): summing the statistics of the drawn sentences and calling the metric's
``_compute_score_from_stats`` gives the same number as ``corpus_score`` on the resampled corpus.

Several seeds per condition (``hyps_by_condition[c]`` a list of hypothesis lists) add a second
level (the "Multi-Bootstrap" of Sellam et al., 2022): each replicate also draws that condition's seeds
with replacement and averages their scores, so the interval covers seed variance as well as
test-sentence variance. With one seed this is the plain paired bootstrap.

Every random draw is independent of the order the conditions come in: the sentence draws come from
``seed`` alone, and each condition's seed draws from ``(seed, sha256(condition name))``. A resumed run
whose conditions come back in another order therefore gets the same intervals, number for number.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from regurg_bench.metric_table import corpus_metric, higher_is_better

DEFAULT_RESAMPLES = 1000
#: The most resamples a config or a submission may ask for: each one holds a float per condition, seed
#: and sentence draw (10^6 tried to allocate 7.5 GiB); 10,000 already gives intervals stable to ~0.01.
MAX_RESAMPLES = 10_000


@dataclass(frozen=True)
class BootstrapScores:
    """Point scores (mean over seeds of the corpus score) and ``n`` replicate scores per condition."""

    metric: str
    higher_is_better: bool
    point: dict[str, float]
    replicates: dict[str, np.ndarray]  # condition -> shape (n,)
    per_seed: dict[str, list[float]]
    n_sentences: int
    n_resamples: int
    seed: int
    #: condition -> (seeds, n) replicate scores of each seed alone on the shared sentence draws
    seed_replicates: dict[str, np.ndarray] | None = None

    @property
    def n_seeds(self) -> int:
        """The most seeds any condition has."""
        return max((len(v) for v in self.per_seed.values()), default=0)

    def for_seed(self, index: int) -> BootstrapScores:
        """The scores of the ``index``-th seed of every condition that has it, as a one-seed bootstrap on
        the same sentence draws (intervals then cover test sentences only): per-seed verdicts."""
        if self.seed_replicates is None:
            raise ValueError("these scores keep no per-seed replicates")
        conds = [c for c, v in self.per_seed.items() if index < len(v)]
        return BootstrapScores(self.metric, self.higher_is_better,
                               {c: self.per_seed[c][index] for c in conds},
                               {c: self.seed_replicates[c][index] for c in conds},
                               {c: [self.per_seed[c][index]] for c in conds},
                               self.n_sentences, self.n_resamples, self.seed,
                               {c: self.seed_replicates[c][index:index + 1] for c in conds})


def condition_rng(seed: int, condition: str) -> np.random.Generator:
    """The random stream of one condition's seed draws: a function of (seed, name), never of order."""
    return np.random.default_rng([seed, int(hashlib.sha256(condition.encode("utf-8")).hexdigest()[:15], 16)])


def _as_seed_lists(hyps: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    if len(hyps) and isinstance(hyps[0], str):
        return [list(hyps)]  # one seed
    return [list(h) for h in hyps]


def sentence_stats(metric_name: str, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-sentence sufficient statistics, shape (sentences, stats)."""
    metric = corpus_metric(metric_name)
    return np.asarray(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


def score_from_stats(metric_name: str, summed: np.ndarray, metric=None) -> float:
    metric = metric or corpus_metric(metric_name)
    return float(metric._compute_score_from_stats(summed).score)


def paired_bootstrap(metric_name: str, hyps_by_condition: Mapping[str, Sequence[str] | Sequence[Sequence[str]]],
                     refs: Sequence[str], n: int = DEFAULT_RESAMPLES, seed: int = 0) -> BootstrapScores:
    """Corpus ``metric_name`` of every condition on ``n`` shared resamples of the test sentences."""
    refs = list(refs)
    m = len(refs)
    if m == 0:
        raise ValueError("no test sentences")
    if n < 1:
        raise ValueError("n must be >= 1")
    rng = np.random.default_rng(seed)
    # Counts of each sentence in each replicate: (n, m); summed stats = counts @ stats.
    idx = rng.integers(0, m, size=(n, m))
    counts = np.zeros((n, m), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(n), m), idx.ravel()), 1.0)
    metric = corpus_metric(metric_name)
    point, reps, per_seed, seed_reps_by_cond = {}, {}, {}, {}
    for cond, hyps in hyps_by_condition.items():
        seeds = _as_seed_lists(hyps)
        seed_point, seed_reps = [], []
        for h in seeds:
            if len(h) != m:
                raise ValueError(f"condition {cond!r}: {len(h)} hypotheses for {m} references")
            stats = sentence_stats(metric_name, h, refs)
            seed_point.append(score_from_stats(metric_name, stats.sum(0), metric))
            summed = counts @ stats
            seed_reps.append(np.array([score_from_stats(metric_name, row, metric) for row in summed]))
        seed_reps_arr = np.stack(seed_reps)  # (k, n)
        k = len(seeds)
        if k > 1:  # second level: resample seeds too
            pick = condition_rng(seed, cond).integers(0, k, size=(n, k))
            reps[cond] = seed_reps_arr[pick, np.arange(n)[:, None]].mean(axis=1)
        else:
            reps[cond] = seed_reps_arr[0]
        point[cond] = float(np.mean(seed_point))
        per_seed[cond] = seed_point
        seed_reps_by_cond[cond] = seed_reps_arr
    return BootstrapScores(metric_name, higher_is_better(metric_name), point, reps, per_seed, m, n, seed,
                           seed_reps_by_cond)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval as order statistics: the ceil(n*a)-th and ceil(n*(1-a))-th smallest of n
    replicates, a = (1 - level) / 2 (the inverted empirical CDF; never interpolates, so infinite
    replicates cannot turn into NaN)."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    alpha = (1.0 - level) / 2.0
    lo = max(0, math.ceil(n * alpha - 1e-9) - 1)
    hi = min(n - 1, max(0, math.ceil(n * (1.0 - alpha) - 1e-9) - 1))
    return float(v[lo]), float(v[hi])
