"""Paired bootstrap over test sentences of sacrebleu *corpus* scores, jointly for many conditions, with
a calibrated seed level.

**Sentences.** Every replicate draws one multiset of test-sentence indices and scores **every** condition
(and every seed) on that same draw, so differences between conditions are paired. Corpus scores are
recomputed exactly, from sacrebleu's per-sentence sufficient statistics (the method of
``sacrebleu.significance``): summing the statistics of the drawn sentences and calling the metric's
``_compute_score_from_stats`` gives the same number as ``corpus_score`` on the resampled corpus.

**Seeds.** A condition trained with k seeds is scored as the mean of its k seeds' corpus scores. Resampling
k seeds with replacement (the plain "Multi-Bootstrap") underestimates the seed spread by (k-1)/k and
has no tails with k = 2 or 3, and the simulation in ``tests/test_scoring_calibration.py`` showed it
false-positive far above 5 % there. Instead each replicate adds to the condition's sentence-resampled
seed mean a draw of ``s / sqrt(k) * t(k - 1)``, with ``s`` the sample standard deviation (ddof 1) of its
seeds' corpus scores: the small-sample distribution of a mean's error (Student). Conditions draw
independently, so differences between conditions get both seed errors.

**Replicates that are not.** Seeds whose hypotheses are identical (a condition the seed did not change)
are one replicate, never k: they count once (``effective_seeds``), and a condition left with one
effective replicate borrows the seed spread pooled over the conditions that have several (with their
pooled degrees of freedom), because its own spread cannot be seen. A run with one seed everywhere has no
seed level: its intervals cover test sentences only.

Every random draw is independent of the order the conditions come in: the sentence draws come from
``seed`` alone, and each condition's seed draws from ``(seed, sha256(condition name))``. A resumed run
whose conditions come back in another order therefore gets the same intervals, number for number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from regurg_bench.metric_table import corpus_metric, higher_is_better

#: 10,000 resamples: the smallest two-sided p is 2/10001, so Holm's correction over a family of ten
#: comparisons at the robustness level (0.01) still rests on ~50 replicates in a tail, not 0-1.
DEFAULT_RESAMPLES = 10_000
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
    #: condition -> (n,) the mean of its distinct seeds on the sentence draws, without the seed level
    sentence_replicates: dict[str, np.ndarray] | None = None
    #: condition -> its number of distinct replicates (seeds whose hypotheses differ)
    effective_seeds: dict[str, int] | None = None
    #: condition -> the seed standard deviation its seed level used (None: no seed level)
    seed_sd: dict[str, float | None] | None = None

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
                               {c: self.seed_replicates[c][index:index + 1] for c in conds},
                               {c: self.seed_replicates[c][index] for c in conds},
                               {c: 1 for c in conds}, {c: None for c in conds})

    def sentence_only(self) -> BootstrapScores:
        """The same scores with the seed level left out (replicates cover test sentences only): what the
        intervals would be with infinitely many seeds; used to split an effect's noise into its parts."""
        if self.sentence_replicates is None:
            return self
        return dataclasses.replace(self, replicates=dict(self.sentence_replicates))


def condition_rng(seed: int, condition: str) -> np.random.Generator:
    """The random stream of one condition's seed draws: a function of (seed, name), never of order."""
    return np.random.default_rng([seed, int(hashlib.sha256(condition.encode("utf-8")).hexdigest()[:15], 16)])


def _as_seed_lists(hyps: Sequence[str] | Sequence[Sequence[str]]) -> list[list[str]]:
    if len(hyps) and isinstance(hyps[0], str):
        return [list(hyps)]  # one seed
    return [list(h) for h in hyps]


def score_from_stats(metric_name: str, summed: np.ndarray, metric=None) -> float:
    metric = metric or corpus_metric(metric_name)
    return float(metric._compute_score_from_stats(summed).score)


def paired_bootstrap(metric_name: str, hyps_by_condition: Mapping[str, Sequence[str] | Sequence[Sequence[str]]],
                     refs: Sequence[str], n: int = DEFAULT_RESAMPLES, seed: int = 0) -> BootstrapScores:
    """Corpus ``metric_name`` of every condition on ``n`` shared resamples of the test sentences (and a
    seed level for conditions with several seeds)."""
    return bootstrap_from_stats(metric_name, condition_stats(metric_name, hyps_by_condition, refs), n=n, seed=seed)


def condition_stats(metric_name: str, hyps_by_condition: Mapping[str, Sequence[str] | Sequence[Sequence[str]]],
                    refs: Sequence[str]) -> dict[str, list[np.ndarray]]:
    """{condition: [per-sentence statistics of each seed]}, every seed checked to have one hypothesis per
    reference (computed once per content, in parallel: :mod:`regurg_bench.scoring.sentence_stats`)."""
    from regurg_bench.scoring.sentence_stats import sentence_stats_many

    refs = list(refs)
    m = len(refs)
    if m == 0:
        raise ValueError("no test sentences")
    seeds = {cond: _as_seed_lists(hyps) for cond, hyps in hyps_by_condition.items()}
    for cond, lists in seeds.items():
        for h in lists:
            if len(h) != m:
                raise ValueError(f"condition {cond!r}: {len(h)} hypotheses for {m} references")
    flat = sentence_stats_many([(metric_name, h, refs) for lists in seeds.values() for h in lists])
    stats: dict[str, list[np.ndarray]] = {}
    for cond, lists in seeds.items():
        stats[cond], flat = flat[:len(lists)], flat[len(lists):]
    return stats


def prefetch_stats(metrics: Sequence[str], hyps_by_condition: Mapping[str, Sequence[str] | Sequence[Sequence[str]]],
                   refs: Sequence[str]) -> None:
    """Compute (or find) the statistics of every metric and file at once, so that the process pool is
    shared by all metrics (the TER files, ~5 s each, run beside the cheap ones); later
    :func:`condition_stats` calls read them from the cache."""
    from regurg_bench.scoring.sentence_stats import sentence_stats_many

    sentence_stats_many([(metric, h, list(refs)) for metric in metrics for hyps in hyps_by_condition.values()
                         for h in _as_seed_lists(hyps)])


def _distinct(seed_stats: Sequence[np.ndarray]) -> list[int]:
    """Indices of the seeds whose statistics differ from every earlier seed's (identical hypotheses give
    identical statistics: such seeds are one replicate)."""
    keep: list[int] = []
    for i, st in enumerate(seed_stats):
        if not any(np.array_equal(st, seed_stats[j]) for j in keep):
            keep.append(i)
    return keep


def _seed_sd(scores: Sequence[float], reps: np.ndarray) -> float:
    """The standard deviation of the seed effect alone. Seeds' corpus scores on the one test set differ by
    the seed effect *and* by each student's own sentence-level noise; the sentence resampling already
    covers that noise (in the seed mean), so it is taken out of the seed spread here instead of being
    counted twice: with k seeds, var_b(score_s,b - mean_s score_s,b) * k / (k - 1) estimates it."""
    k = len(scores)
    spread = float(np.var(scores, ddof=1))
    own_noise = float(np.mean(np.var(reps - reps.mean(axis=0), axis=1, ddof=1))) * k / (k - 1)
    return math.sqrt(max(spread - own_noise, 0.0))


def bootstrap_from_stats(metric_name: str, stats_by_condition: Mapping[str, Sequence[np.ndarray]],
                         n: int = DEFAULT_RESAMPLES, seed: int = 0) -> BootstrapScores:
    """The bootstrap of :func:`paired_bootstrap` from per-sentence sufficient statistics: ``{condition: [one
    (sentences, stats) array per seed]}``. The one scoring core: the protocol, the leaderboard's verifier and
    the calibration simulation (synthetic statistics with a known truth) all run it."""
    if n < 1:
        raise ValueError("n must be >= 1")
    m = {len(st) for seeds in stats_by_condition.values() for st in seeds}
    if len(m) != 1:
        raise ValueError(f"conditions have different numbers of test sentences: {sorted(m)}")
    m = m.pop()
    if m == 0:
        raise ValueError("no test sentences")
    rng = np.random.default_rng(seed)
    # Counts of each sentence in each replicate: (n, m); summed stats = counts @ stats.
    idx = rng.integers(0, m, size=(n, m))
    counts = np.zeros((n, m), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(n), m), idx.ravel()), 1.0)
    metric = corpus_metric(metric_name)
    point, per_seed, seed_reps, sentence_reps, effective, spread = {}, {}, {}, {}, {}, {}
    for cond, seeds in stats_by_condition.items():
        scores = [score_from_stats(metric_name, st.sum(0), metric) for st in seeds]
        reps = np.stack([np.array([score_from_stats(metric_name, row, metric) for row in counts @ st])
                         for st in seeds])  # (k, n)
        distinct = _distinct(seeds)
        per_seed[cond] = scores
        seed_reps[cond] = reps
        effective[cond] = len(distinct)
        point[cond] = float(np.mean([scores[i] for i in distinct]))
        sentence_reps[cond] = reps[distinct].mean(axis=0)
        spread[cond] = _seed_sd([scores[i] for i in distinct], reps[distinct]) if len(distinct) > 1 else None
    # Seed spread pooled over the conditions that show one: for conditions with a single replicate.
    dof = sum(effective[c] - 1 for c in spread if spread[c] is not None)
    pooled = (math.sqrt(sum((effective[c] - 1) * spread[c] ** 2 for c in spread if spread[c] is not None) / dof)
              if dof else None)
    has_seeds = any(len(v) > 1 for v in stats_by_condition.values())
    replicates, used_sd = {}, {}
    for cond in stats_by_condition:
        k = effective[cond]
        sd, df = (spread[cond], k - 1) if spread[cond] is not None else (pooled, dof)
        if not has_seeds or sd is None:
            replicates[cond], used_sd[cond] = sentence_reps[cond], None
            continue
        noise = sd / math.sqrt(k) * condition_rng(seed, cond).standard_t(df, size=n)
        replicates[cond], used_sd[cond] = sentence_reps[cond] + noise, sd
    return BootstrapScores(metric_name, higher_is_better(metric_name), point, replicates, per_seed, m, n, seed,
                           seed_reps, sentence_reps, effective, used_sd)


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Symmetric percentile interval as order statistics: with r = floor((n + 1) * a), a = (1 - level) / 2,
    the r-th smallest and the r-th largest of n replicates, so r - 1 replicates lie beyond each end (never
    interpolates, so infinite replicates cannot turn into NaN). It excludes 0 exactly when
    :func:`regurg_bench.scoring.effects.bootstrap_p` is <= 1 - level."""
    v = np.sort(np.asarray(values, dtype=np.float64))
    n = len(v)
    r = min(max(1, math.floor((n + 1) * (1.0 - level) / 2.0 + 1e-9)), (n + 1) // 2)
    return float(v[r - 1]), float(v[n - r])
