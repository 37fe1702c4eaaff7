"""The tail claim's interval (:mod:`regurg_bench.protocol.collapse_tail`) tested like code: word types kept
with known probabilities, the real interval and verdict function run on them, and the false-positive rate
and power counted (numbers in the module docstring and the README)."""

from __future__ import annotations

import numpy as np
import pytest

from regurg_bench.protocol.collapse_tail import MIN_TYPES, gap_interval, tail_claim_intervals, verdict

TAIL = [f"tail{i}" for i in range(300)]
HEAD = [f"head{i}" for i in range(100)]


def _simulate(p_tail: float, p_head: float, runs: int, *, seeds: int = 2, generations: int = 2) -> tuple[float, float]:
    """(share of runs whose claim holds, share of generations whose interval lies above 0)."""
    rng = np.random.default_rng(7)
    holds = above = 0
    for r in range(runs):
        kept = [[{t for t in TAIL if rng.random() < p_tail} | {h for h in HEAD if rng.random() < p_head}
                 for _ in range(seeds)] for _ in range(generations)]
        v, per_generation = tail_claim_intervals(TAIL, HEAD, kept, resamples=400, seed=r, level=0.95)
        holds += v == "holds"
        above += sum(g["ci_low"] > 0 for g in per_generation)
    return holds / runs, above / (runs * generations)


def test_false_positive_rate_when_tail_and_head_are_kept_alike():
    """Equal retention (0.7): each generation's interval excludes 0 from above about 2.5 % of the time (one
    side of a 95 % interval), and the claim, which needs every generation, holds less often still."""
    claim, per_generation = _simulate(0.7, 0.7, runs=300)
    assert 0.005 <= per_generation <= 0.05, per_generation
    assert claim <= 0.05, claim


def test_power_when_the_tail_is_lost_first():
    claim, _ = _simulate(0.5, 0.8, runs=100)  # a clear loss of the tail: found every time
    assert claim >= 0.95, claim
    claim, _ = _simulate(0.6, 0.7, runs=200)  # a small one, with 300 tail types and 2 seeds: about half
    assert 0.3 <= claim <= 0.8, claim


def test_verdicts_and_degenerate_cases():
    ones = np.ones(MIN_TYPES)
    g = gap_interval(ones, ones, resamples=50, seed=0, level=0.95)
    assert (g["estimate"], g["ci_low"], g["ci_high"]) == (0.0, 0.0, 0.0)  # nothing lost: no claim
    assert verdict([{"ci_low": 0.0, "ci_high": 0.0}]) == "inconclusive"
    assert verdict([{"ci_low": -0.3, "ci_high": -0.1}] * 2) == "contradicted"
    assert gap_interval(np.array([]), ones, resamples=10, seed=0, level=0.95)["estimate"] is None
    assert verdict([{"ci_low": None, "ci_high": None}]) == "undefined"
    v, per = tail_claim_intervals(TAIL[:3], HEAD[:3], [[set(HEAD[:3])]], resamples=100, seed=1, level=0.95)
    assert v == "undefined" and per[0]["estimate"] == pytest.approx(1.0)  # 3 types each: too few for an interval
