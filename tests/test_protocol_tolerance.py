"""The seed-noise tolerance ``verify`` and ``compare`` share (:mod:`regurg_bench.protocol.tolerance`)."""

from __future__ import annotations

import math

import pytest

from regurg_bench.protocol.tolerance import run_seed_spread, seed_spread, tolerance, within


def test_the_tolerance_pools_seed_spread_and_widens_with_the_comparisons():
    """s_seed pools the conditions whose seeds differ (ddof=1); identical seeds and single seeds add nothing;
    the Bonferroni t quantile grows with the number of comparisons; no spread, no tolerance."""
    spread = seed_spread([[1.0, 3.0], [2.0, 2.0, 2.0], [5.0], [0.0, 1.0, 2.0]])
    assert spread.df == 3 and spread.conditions == 2
    assert spread.sd == pytest.approx(math.sqrt((2.0 + 2.0) / 3))
    one, many = tolerance(spread, 1), tolerance(spread, 30)
    from scipy.stats import t

    assert one.value == pytest.approx(t.ppf(0.975, 3) * spread.sd * math.sqrt(2))
    assert many.value > one.value and within(one.value, one) and not within(one.value * 1.01, one)
    assert tolerance(spread, 1, n_a=3, n_b=3).value == pytest.approx(one.value / math.sqrt(3))
    none = tolerance(seed_spread([[1.0, 1.0], [4.0]]), 3)
    assert none.value is None and within(0.1, none) is None
    from regurg_bench.results import RunResults, RunScore

    def score(per_seed):
        return RunScore(score=sum(per_seed) / len(per_seed), ci_low=0.0, ci_high=4.0, per_seed=per_seed)

    results = RunResults.model_construct(scores={"t": {"c": {"bleu": score([1.0, 3.0])}, "d": {"bleu": score([0.0, 2.0])}}})
    assert run_seed_spread([results, results], "t", "bleu").df == 4


@pytest.mark.parametrize("seeds, conditions, comparisons", [(2, 10, 3), (3, 8, 3), (3, 8, 30), (5, 4, 9)])
def test_an_honest_rerun_fails_at_most_5_percent_of_checks(seeds, conditions, comparisons):
    """The stated false-failure rate, by simulation: seed noise sigma, a re-run that is a fresh draw of it (the
    worst case the tolerance assumes), ``comparisons`` scores per check. The share of checks where any score
    falls outside its tolerance stays at or below 5 % (plus three Monte-Carlo standard errors); a shift of
    eight seed standard deviations in one score is caught in most checks."""
    import numpy as np

    rng = np.random.default_rng(seeds * 100 + comparisons)
    n, sigma = 4000, 0.7
    failed = caught = 0
    for _ in range(n):
        spread = seed_spread(rng.normal(30.0, sigma, size=(conditions, seeds)).tolist())
        tol = tolerance(spread, comparisons)
        diffs = rng.normal(0.0, sigma * math.sqrt(2), size=comparisons)
        failed += bool(np.any(np.abs(diffs) > tol.value))
        caught += bool(abs(diffs[0] + 8 * sigma) > tol.value or np.any(np.abs(diffs[1:]) > tol.value))
    rate = failed / n
    print(f"k={seeds} seeds, {conditions} conditions, m={comparisons}: false failures {rate:.3f}, "
          f"8-sigma shift caught {caught / n:.3f}")
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / n), rate
    if seeds * conditions - conditions >= 8:  # enough degrees of freedom for a tight tolerance
        assert caught / n > 0.8, caught / n
