"""The verdict words the benchmark reports ("holds", "contradicted", "inconclusive", "undefined"), for
known inputs, through the scoring functions that compute them, for each metric direction.

Bootstrap replicates are made up (normal draws around chosen scores), so each case's expected verdict
follows from the numbers alone: real data better -> D holds; worse -> contradicted; overlapping ->
inconclusive; S_real = 0 -> undefined. TER is lower-is-better: the same story told with TER numbers
must give the same words.
"""

from __future__ import annotations

import numpy as np
import pytest

from regurg_bench.metric_table import higher_is_better
from regurg_bench.scoring.bootstrap import BootstrapScores
from regurg_bench.scoring.effects import degradation, holm, recovery
from regurg_bench.scoring.matrix import matrix_effects
from regurg_bench.scoring.verdicts import verdict

N = 2000


def _scores(metric: str, means: dict[str, float], sd: float = 0.1, seed: int = 0) -> BootstrapScores:
    rng = np.random.default_rng(seed)
    reps = {c: rng.normal(m, sd, N) if m else np.zeros(N) for c, m in means.items()}
    return BootstrapScores(metric, higher_is_better(metric), dict(means), reps, {c: [m] for c, m in means.items()},
                           n_sentences=100, n_resamples=N, seed=seed)


def _better(metric: str, good: float, bad: float) -> tuple[float, float]:
    """(score of the better system, score of the worse one) in ``metric``'s own direction."""
    return (good, bad) if higher_is_better(metric) else (bad, good)


@pytest.mark.parametrize("metric", ["bleu", "chrf", "ter"])
@pytest.mark.parametrize(("story", "expected"), [
    ("real better", "holds"),
    ("regurg better", "contradicted"),
    ("overlap", "inconclusive (interval contains 0)"),
])
def test_degradation_verdicts(metric, story, expected):
    hi, lo = _better(metric, 30.0, 20.0)  # hi: the better score in this metric's direction
    means = {"real better": {"real": hi, "regurg": lo}, "regurg better": {"real": lo, "regurg": hi},
             "overlap": {"real": 25.0, "regurg": 25.02}}[story]
    effect = degradation(_scores(metric, means, sd=0.1 if story != "overlap" else 1.0), "real", "regurg")
    assert verdict(effect.to_dict()) == expected
    if expected == "holds":
        assert effect.estimate > 0  # D > 0 always means real data won, TER included


@pytest.mark.parametrize("metric", ["bleu", "ter"])
def test_degradation_undefined_without_a_scale(metric):
    effect = degradation(_scores(metric, {"real": 0.0, "regurg": 3.0}), "real", "regurg")
    assert effect.status == "undefined" and verdict(effect.to_dict()) == "undefined"


@pytest.mark.parametrize("metric", ["bleu", "ter"])
@pytest.mark.parametrize(("mitigated", "expected"), [
    (0.5, "holds"),          # half-way between regurg and real: R = 0.5
    (-0.5, "contradicted"),  # worse than regurg alone: R < 0
    (0.0, "inconclusive (interval contains 0)"),
])
def test_recovery_verdicts(metric, mitigated, expected):
    real, regurg = _better(metric, 30.0, 20.0)
    means = {"real": real, "regurg": regurg, "m": regurg + mitigated * (real - regurg)}
    effect = recovery(_scores(metric, means, sd=0.3), "real", "regurg", "m")
    assert verdict(effect.to_dict()) == expected
    if expected != "inconclusive (interval contains 0)":
        assert effect.estimate == pytest.approx(mitigated)


@pytest.mark.parametrize("metric", ["bleu", "ter"])
def test_recovery_without_a_significant_gap_is_undetermined(metric):
    effect = recovery(_scores(metric, {"real": 25.0, "regurg": 24.99, "m": 26.0}, sd=1.0), "real", "regurg", "m")
    assert effect.estimate is None and verdict(effect.to_dict()) == "undetermined (no significant real-vs-regurg gap)"


def test_holm_turns_a_marginal_holds_into_inconclusive():
    """An interval that excludes 0 on its own, in a family whose other members are null: after Holm's
    correction it is no longer significant, and the verdict says why."""
    rng = np.random.default_rng(1)
    # a degradation of ~2.05 standard errors: p ~ 0.04 alone, interval [>0, ...]
    real = rng.normal(10.0, 0.2, N)
    marginal = real - rng.normal(0.0, 0.01, N) - np.where(rng.random(N) < 0.985, 0.3, -0.3)
    bs = BootstrapScores("bleu", True, {"real": 10.0, "regurg_a": 9.7, "regurg_b": 9.99, "regurg_c": 10.02},
                         {"real": real, "regurg_a": marginal, "regurg_b": real + rng.normal(0, 0.5, N),
                          "regurg_c": real + rng.normal(0, 0.5, N)},
                         {c: [0.0] for c in ("real", "regurg_a", "regurg_b", "regurg_c")}, 100, N, 1)
    alone = degradation(bs, "real", "regurg_a")
    assert verdict(alone.to_dict()) == "holds" and alone.p_value > 0.0125
    family = holm([alone, degradation(bs, "real", "regurg_b"), degradation(bs, "real", "regurg_c")])
    assert verdict(family[0].to_dict()) == "inconclusive (not significant after Holm's correction)"
    # the same, through the one function the report and the leaderboard verifier share
    fx = matrix_effects(bs, {c: {"kind": "regurg"} for c in bs.point}, ["a", "b", "c"])
    assert verdict(fx.degradation["regurg_a"].to_dict()) == "inconclusive (not significant after Holm's correction)"


def test_verdict_takes_the_interval_side_not_the_point_estimate():
    """A skewed ratio can put its point estimate on one side of 0 and its whole interval on the other: the
    verdict follows the interval (the old rule said "holds" from the positive estimate)."""
    from regurg_bench.scoring.effects import Effect

    e = Effect("recovery", "bleu", 0.02, -0.4, -0.05, "ok", p_value=0.01)
    assert verdict(e) == "contradicted" and verdict(e.to_dict()) == "contradicted"
    assert verdict(Effect("recovery", "bleu", -0.02, 0.05, 0.4, "ok", p_value=0.01)) == "holds"


def test_recovery_is_gated_on_the_holm_adjusted_degradation():
    """D of regurg_a excludes 0 alone but not after Holm over three generators: its recovery must not hold
    (before, R's gate used the unadjusted gap interval, so R could hold where D was inconclusive)."""
    rng = np.random.default_rng(1)
    real = rng.normal(10.0, 0.2, N)
    marginal = real - rng.normal(0.0, 0.01, N) - np.where(rng.random(N) < 0.985, 0.3, -0.3)
    reps = {"real": real, "regurg_a": marginal, "regurg_b": real + rng.normal(0, 0.5, N),
            "regurg_c": real + rng.normal(0, 0.5, N), "m_a": marginal + 0.2}
    point = {"real": 10.0, "regurg_a": 9.7, "regurg_b": 9.99, "regurg_c": 10.02, "m_a": 9.9}
    bs = BootstrapScores("bleu", True, point, reps, {c: [0.0] for c in point}, 100, N, 1)
    conditions = {c: {"kind": "regurg", "generator": c[-1]} for c in point if c.startswith("regurg")}
    conditions |= {"real": {"kind": "real"}, "m_a": {"kind": "m1_topk", "generator": "a"}}
    assert recovery(bs, "real", "regurg_a", "m_a").status == "ok"  # gated on the unadjusted D: defined
    fx = matrix_effects(bs, conditions, ["a", "b", "c"])
    assert fx.degradation["regurg_a"].status == "not_significant"
    r = fx.recovery["m_a"]["regurg_a"]
    assert r.status == "no_gap" and r.estimate is None and "not established" in r.note


def test_identical_seeds_are_one_replicate_and_borrow_the_pooled_seed_spread():
    from regurg_bench.scoring.bootstrap import bootstrap_from_stats
    from regurg_bench.scoring.simulation import Noise, Truth, simulate_stats

    stats = simulate_stats(Truth(), Noise(seed_sd=2.0, identical=frozenset({"m1_topk_b"})), 3,
                           np.random.default_rng(0))
    bs = bootstrap_from_stats("ter", stats, n=2000, seed=0)
    assert bs.effective_seeds["m1_topk_b"] == 1 and bs.effective_seeds["real"] == 3
    assert len(bs.per_seed["m1_topk_b"]) == 3  # every seed is still reported
    # its seed level uses the spread pooled over the conditions that show one, not zero
    assert bs.seed_sd["m1_topk_b"] is not None and bs.seed_sd["m1_topk_b"] > 0
    only = np.std(bs.sentence_replicates["m1_topk_b"])
    assert np.std(bs.replicates["m1_topk_b"]) > 1.5 * only  # wider than test sentences alone
    # a run with one seed has no seed level at all
    one = bootstrap_from_stats("ter", {c: v[:1] for c, v in stats.items()}, n=200, seed=0)
    assert all(np.array_equal(one.replicates[c], one.sentence_replicates[c]) for c in stats)


def test_detectability_from_the_full_and_the_sentence_only_intervals():
    """SE 1 in all (interval ±1.96), SE 0.5 from test sentences alone: 3/4 of the variance is the seeds'."""
    from regurg_bench.scoring.effects import Effect
    from regurg_bench.scoring.power import with_detectability

    z = 1.959963984540054
    full = Effect("difference", "chrf", 2.0, 2.0 - z, 2.0 + z, "ok", p_value=0.04)
    alone = Effect("difference", "chrf", 2.0, 2.0 - z / 2, 2.0 + z / 2, "ok", p_value=0.001)
    e = with_detectability(full, alone, seeds=3, family_size=1)
    assert e.detectable == pytest.approx(z + 0.8416212335729143)
    assert e.seed_share == pytest.approx(0.75)
    # (2 / 2.80)^2 - 0.25 = 0.260 of room for 0.75 * 3 / k' of seed variance: k' = 9
    assert e.seeds_needed == 9
    # an effect smaller than the sentence noise alone can hide: no number of seeds finds it
    small = with_detectability(Effect("difference", "chrf", 0.5, 0.5 - z, 0.5 + z, "not_significant"), alone, 3, 1)
    assert small.seeds_needed is None and small.detectable == pytest.approx(e.detectable)
    # a family of 6 raises the threshold (Holm's strictest step)
    assert with_detectability(full, alone, 3, 6).detectable > e.detectable
