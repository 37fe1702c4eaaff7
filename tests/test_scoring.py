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
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.60), pytest.approx(0.98))
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
    assert (r.ci_low, r.ci_high) == (pytest.approx(0.025), pytest.approx(0.975))
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
    assert r.status == NO_GAP and r.estimate is None and "not significant" in r.note

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
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.1), pytest.approx(3.9)) and d.status == OK
    # TER 60 vs 70: the lower TER is the better system, so Δ(frac over regurg) = +10
    ter = _bs("ter", False, frac=(60.0, [60.0] * 40), regurg=(70.0, [70.0] * 40))
    assert difference(ter, "frac", "regurg").estimate == pytest.approx(10.0)
    # an interval that contains 0 is flagged, never called a win
    noisy = _bs("bleu", True, frac=(10.5, [9.0 + i / 10 for i in range(40)]), regurg=(10.0, [10.0] * 40))
    assert difference(noisy, "frac", "regurg").status == NOT_SIGNIFICANT
