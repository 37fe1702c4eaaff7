"""Scoring math: paired bootstrap of sacrebleu corpus scores, degradation and recovery, undefined cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.evaluation.signatures import corpus_score
from regurg_bench.scoring import BootstrapScores, degradation, paired_bootstrap, recovery
from regurg_bench.scoring.effects import NO_GAP, NOT_SIGNIFICANT, OK, UNDEFINED, gap


def _bs(metric: str, hib: bool, **reps) -> BootstrapScores:
    """Hand-made bootstrap results: the first replicate value list is the point score unless given."""
    point = {k: float(v[0]) if not isinstance(v, tuple) else v[0] for k, v in reps.items()}
    arrays = {k: np.asarray(v[1] if isinstance(v, tuple) else v, dtype=float) for k, v in reps.items()}
    return BootstrapScores(metric, hib, point, arrays, {k: [p] for k, p in point.items()}, 10, 40, 0)


@pytest.fixture(scope="module")
def texts():
    pairs = load_bible_pairs("en-es", "test")[:60]
    refs = [p.target for p in pairs]
    # three systems of different quality: the reference, half-truncated references, first word only
    half = [" ".join(r.split()[: max(1, len(r.split()) // 2)]) for r in refs]
    first = [r.split()[0] for r in refs]
    return refs, half, first


def test_known_degradation_and_interval():
    # real fixed at 10; regurg replicates 0.1..4.0 -> D_i = 1 - i/100; 2.5%/97.5% inverted-CDF
    # quantiles of 40 values are the 1st and 39th smallest.
    bs = _bs("bleu", True, real=(10.0, [10.0] * 40), regurg=(5.0, [i / 10 for i in range(1, 41)]))
    d = degradation(bs, "real", "regurg")
    assert d.estimate == pytest.approx(0.5)
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.60), pytest.approx(0.99))
    assert d.status == OK


def test_known_recovery_and_ter_direction():
    # TER: lower is better. real 20, regurg 30, mitigated 25 -> D = (30-20)/20 = 0.5, R = 0.5.
    bs = _bs("ter", False, real=(20.0, [20.0] * 40), regurg=(30.0, [30.0] * 40), m=(25.0, [25.0] * 40))
    d = degradation(bs, "real", "regurg")
    assert d.estimate == pytest.approx(0.5) and d.status == OK
    assert gap(bs, "real", "regurg")[0] == pytest.approx(10.0)
    r = recovery(bs, "real", "regurg", "m")
    assert (r.estimate, r.ci_low, r.ci_high, r.status) == (pytest.approx(0.5), 0.5, 0.5, OK)
    # the same numbers as a higher-is-better metric give the opposite sign of D
    bs_up = _bs("bleu", True, real=(20.0, [20.0] * 40), regurg=(30.0, [30.0] * 40), m=(25.0, [25.0] * 40))
    assert degradation(bs_up, "real", "regurg").estimate == pytest.approx(-0.5)
    assert recovery(bs_up, "real", "regurg", "m").status == NO_GAP  # regurg better: nothing to recover


def test_recovery_interval_known():
    # gap fixed at 10; mitigated replicates spread -> R_i = (m_i - 10)/10 with m_i = 10 + i/4, i=1..40
    bs = _bs("chrf", True, real=(20.0, [20.0] * 40), regurg=(10.0, [10.0] * 40),
             m=(15.0, [10 + i / 4 for i in range(1, 41)]))
    r = recovery(bs, "real", "regurg", "m")
    assert r.estimate == pytest.approx(0.5)
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.025), pytest.approx(1.0))  # symmetric: 1st and 40th
    assert r.status == OK


def test_undefined_cases():
    equal = _bs("bleu", True, real=(5.0, [5.0] * 40), regurg=(5.0, [5.0] * 40), m=(6.0, [6.0] * 40))
    d = degradation(equal, "real", "regurg")
    assert d.status == NO_GAP and d.estimate == 0.0
    r = recovery(equal, "real", "regurg", "m")
    assert r.status == NO_GAP and r.estimate is None and r.ci_low is None

    zero = _bs("bleu", True, real=(0.0, [0.0] * 40), regurg=(0.0, [0.0] * 40))
    assert degradation(zero, "real", "regurg").status == UNDEFINED
    assert degradation(zero, "real", "regurg").estimate is None

    # point gap positive but its interval crosses zero -> no recovery number, D flagged
    noisy = _bs("bleu", True, real=(6.0, [6.0] * 40), regurg=(5.0, [i / 4 for i in range(1, 41)]),
                m=(5.5, [5.5] * 40))
    d = degradation(noisy, "real", "regurg")
    assert d.status == NOT_SIGNIFICANT and d.ci_low < 0 < d.ci_high
    r = recovery(noisy, "real", "regurg", "m")
    assert r.status == NO_GAP and r.estimate is None and "not established" in r.note

    # recovery defined but its interval contains 0
    flat = _bs("bleu", True, real=(10.0, [10.0] * 40), regurg=(5.0, [5.0] * 40),
               m=(5.0, [5.0 + (i - 20) / 10 for i in range(1, 41)]))
    r = recovery(flat, "real", "regurg", "m")
    assert r.status == NOT_SIGNIFICANT and r.estimate == pytest.approx(0.0)
    assert r.to_dict()["estimate"] == 0.0


@pytest.mark.parametrize("metric", ["bleu", "chrf", "ter"])
def test_bootstrap_point_and_replicates_are_corpus_scores(texts, metric):
    refs, half, first = texts
    n, seed = 30, 7
    bs = paired_bootstrap(metric, {"real": refs, "regurg": half, "m": first}, refs, n=n, seed=seed)
    for cond, hyps in {"real": refs, "regurg": half, "m": first}.items():
        assert math.isclose(bs.point[cond], corpus_score(metric, hyps, refs), abs_tol=1e-9)
    # replicate b is the corpus score of the resampled corpus (same draw for every condition)
    idx = np.random.default_rng(seed).integers(0, len(refs), size=(n, len(refs)))
    for b in (0, 13, n - 1):
        rr = [refs[i] for i in idx[b]]
        for cond, hyps in {"real": refs, "regurg": half, "m": first}.items():
            expected = corpus_score(metric, [hyps[i] for i in idx[b]], rr)
            assert math.isclose(bs.replicates[cond][b], expected, rel_tol=1e-9, abs_tol=1e-9), (cond, b)


def test_end_to_end_real_texts(texts):
    refs, half, first = texts
    bs = paired_bootstrap("bleu", {"real": refs, "regurg": first, "m": half}, refs, n=200, seed=0)
    d = degradation(bs, "real", "regurg")
    assert d.status == OK and 0 < d.ci_low <= d.estimate <= d.ci_high <= 1
    r = recovery(bs, "real", "regurg", "m")
    assert r.status == OK and 0 < r.estimate < 1
    # identical systems: the gap is exactly zero in every replicate
    same = paired_bootstrap("chrf", {"real": half, "regurg": half, "m": refs}, refs, n=50)
    assert recovery(same, "real", "regurg", "m").status == NO_GAP
    assert degradation(same, "real", "regurg").status == NO_GAP
    ter = paired_bootstrap("ter", {"real": refs, "regurg": first}, refs, n=50)
    assert ter.point["real"] == 0.0  # perfect real system: TER 0, so a relative D has no scale
    assert degradation(ter, "real", "regurg").status == UNDEFINED
    assert recovery(ter, "real", "regurg", "regurg").estimate == 0.0  # the gap itself is fine


def test_seeds_level():
    pairs = load_bible_pairs("en-es", "test")[:40]
    refs = [p.target for p in pairs]
    half = [" ".join(r.split()[:3]) for r in refs]
    one = paired_bootstrap("chrf", {"a": half}, refs, n=20, seed=1)
    two = paired_bootstrap("chrf", {"a": [half, half]}, refs, n=20, seed=1)
    assert two.point["a"] == pytest.approx(one.point["a"])
    assert np.allclose(two.replicates["a"], one.replicates["a"])  # identical seeds: no extra spread
    mixed = paired_bootstrap("chrf", {"a": [half, refs]}, refs, n=200, seed=1)
    assert mixed.point["a"] == pytest.approx((corpus_score("chrf", half, refs) + 100.0) / 2)
    assert mixed.per_seed["a"][1] == pytest.approx(100.0)
    with pytest.raises(ValueError, match="hypotheses"):
        paired_bootstrap("bleu", {"a": half[:-1]}, refs, n=5)


def test_difference_known_values_and_ter_direction():
    from regurg_bench.scoring import difference

    # fraction 12 vs regurg 10 (BLEU): Δ = 2; replicates of fraction 10.1..14.0 -> Δ_i = i/10 - 0
    bs = _bs("bleu", True, frac=(12.0, [10 + i / 10 for i in range(1, 41)]), regurg=(10.0, [10.0] * 40))
    d = difference(bs, "frac", "regurg")
    assert d.estimate == pytest.approx(2.0)
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.1), pytest.approx(4.0)) and d.status == OK
    # TER 60 vs 70: the lower TER is the better system, so Δ(frac over regurg) = +10
    ter = _bs("ter", False, frac=(60.0, [60.0] * 40), regurg=(70.0, [70.0] * 40))
    assert difference(ter, "frac", "regurg").estimate == pytest.approx(10.0)
    # an interval that contains 0 is flagged, never called a win
    noisy = _bs("bleu", True, frac=(10.5, [9.0 + i / 10 for i in range(40)]), regurg=(10.0, [10.0] * 40))
    assert difference(noisy, "frac", "regurg").status == NOT_SIGNIFICANT


def test_multi_seed_draws_do_not_depend_on_condition_order(texts):
    """A resumed run may list its conditions in another order: the intervals must not move."""
    refs, half, first = texts
    hyps = {"real": [refs, half], "regurg": [half, first], "m": [first, refs]}
    a = paired_bootstrap("chrf", hyps, refs, n=100, seed=3)
    b = paired_bootstrap("chrf", dict(reversed(list(hyps.items()))), refs, n=100, seed=3)
    for cond in hyps:
        np.testing.assert_array_equal(a.replicates[cond], b.replicates[cond])


def test_for_seed_is_that_seed_alone_on_the_same_sentence_draws(texts):
    refs, half, first = texts
    bs = paired_bootstrap("bleu", {"real": [refs, half], "regurg": [half, first]}, refs, n=50, seed=1)
    one = bs.for_seed(1)
    alone = paired_bootstrap("bleu", {"real": half, "regurg": first}, refs, n=50, seed=1)
    assert one.point == alone.point
    for cond in ("real", "regurg"):
        np.testing.assert_allclose(one.replicates[cond], alone.replicates[cond])
    assert bs.n_seeds == 2 and one.n_seeds == 1


def test_bootstrap_p_and_holm_known_values():
    from regurg_bench.scoring.effects import Effect, bootstrap_p, holm

    assert bootstrap_p(np.ones(99)) == pytest.approx(2 / 100)  # every replicate above 0
    assert bootstrap_p(np.r_[-np.ones(50), np.ones(49)]) == 1.0
    assert bootstrap_p(np.array([np.nan])) is None
    mk = lambda p: Effect("recovery", "chrf", 0.5, 0.1, 0.9, OK, "", 0.95, p)  # noqa: E731
    # Holm over m = 3: sorted p 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (monotone)
    out = holm([mk(0.04), mk(0.01), mk(0.02)])
    assert [e.p_adjusted for e in out] == [pytest.approx(0.04), pytest.approx(0.03), pytest.approx(0.04)]
    assert all(e.status == OK for e in out)
    out = holm([mk(0.03), mk(0.02)])  # 0.04, 0.04 -> both still below 0.05
    assert all(e.status == OK for e in out)
    out = holm([mk(0.03), mk(0.02), mk(0.001)])  # 0.003, then 2 * 0.02 = 0.04, then max(0.04, 0.03)
    assert [e.status for e in out] == [OK, OK, OK]
    out = holm([mk(0.03), mk(0.026), mk(0.001)])  # 2 * 0.026 = 0.052 >= 0.05: both fail
    assert [e.status for e in out] == [NOT_SIGNIFICANT, NOT_SIGNIFICANT, OK]
    assert "Holm" in out[0].note
    # effects without a p-value (undefined, no gap) take no part and are untouched
    nogap = Effect("recovery", "chrf", None, None, None, NO_GAP)
    assert holm([nogap, mk(0.04)]) == [nogap, dataclasses_replace(mk(0.04), p_adjusted=0.04)]


def dataclasses_replace(e, **kw):
    import dataclasses

    return dataclasses.replace(e, **kw)


def test_matrix_effects_applies_holm_per_family(texts):
    from regurg_bench.scoring.matrix import matrix_effects

    refs, half, first = texts
    hyps = {"real": refs, "regurg_a": half, "regurg_b": first, "m1_order_a": refs, "m2_multigen": half}
    conds = {"real": {"kind": "real"}, "regurg_a": {"kind": "regurg", "generator": "a"},
             "regurg_b": {"kind": "regurg", "generator": "b"},
             "m1_order_a": {"kind": "m1_order", "generator": "a"}, "m2_multigen": {"kind": "m2_multigen"}}
    bs = paired_bootstrap("chrf", hyps, refs, n=200, seed=0)
    fx = matrix_effects(bs, conds, ["a", "b"])
    assert set(fx.degradation) == {"regurg_a", "regurg_b"}
    assert set(fx.recovery) == {"m1_order_a", "m2_multigen"}
    assert set(fx.recovery["m1_order_a"]) == {"regurg_a"} and set(fx.recovery["m2_multigen"]) == {"regurg_a", "regurg_b"}
    family = [fx.recovery["m1_order_a"]["regurg_a"], *fx.recovery["m2_multigen"].values()]
    assert all(e.p_adjusted is not None and e.p_adjusted >= e.p_value for e in family)
    assert all(e.status == OK and e.estimate > 0 for e in fx.degradation.values())
