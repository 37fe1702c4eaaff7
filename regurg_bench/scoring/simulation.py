"""Synthetic student matrices with a known truth, scored by the real scoring code: calibration and power.

A simulated run has test sentences of known reference lengths and difficulties, and conditions whose true
TER (in points) is set by a :class:`Truth`. Each condition x seed is a student: its per-sentence error rate
is the condition's truth + the sentence's difficulty (shared by every student: the test set is one) + the
seed's effect (``seed_sd``, one draw per student) + the student's own per-sentence noise (``sentence_sd``).
TER's sufficient statistics (edits, reference length) per sentence go to
:func:`regurg_bench.scoring.matrix.score_stats`, the function the protocol and the leaderboard verifier
run, so what is measured here is what users get: the share of verdicts that are not "inconclusive" when the
truth is null (false positives), when it is not (power), and whether robust verdicts survive a second run
with new seeds. ``identical`` conditions get one student copied into every seed (a condition the seed
does not change).

``tests/test_scoring_calibration.py`` asserts the rates; ``benchmarks/calibration.py`` prints them with
more simulations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

#: The simulated matrix: generator a is the null degradation (and the null difference of the fraction),
#: generator b degrades strongly and its mitigation is the null recovery.
CONDITIONS = {"real": {"kind": "real", "generator": None},
              "regurg_a": {"kind": "regurg", "generator": "a"},
              "regurg_b": {"kind": "regurg", "generator": "b"},
              "m1_topk_b": {"kind": "m1_topk", "generator": "b"},
              "fraction_real_050": {"kind": "fraction", "generator": None}}
GENERATORS = ["a", "b"]
#: The three claims a simulation reads: (family, key) in MatrixEffects.
CLAIMS = {"D": ("degradation", ("regurg_a",)), "R": ("recovery", ("m1_topk_b", "regurg_b")),
          "Δ": ("differences", ("fraction_real_050", "regurg_a"))}


@dataclass(frozen=True)
class Truth:
    """True corpus TER (points) of each condition; the defaults are the null of every read claim."""

    real: float = 60.0
    regurg_a: float = 60.0  # D_a = (regurg_a - real) / real
    regurg_b: float = 70.0
    m1_topk_b: float = 70.0  # R = (regurg_b - m) / (regurg_b - real)
    fraction_real_050: float = 60.0  # Δ = regurg_a - fraction

    def effect(self, claim: str) -> float:
        return {"D": (self.regurg_a - self.real) / self.real,
                "R": (self.regurg_b - self.m1_topk_b) / (self.regurg_b - self.real),
                "Δ": self.regurg_a - self.fraction_real_050}[claim]


@dataclass(frozen=True)
class Noise:
    sentences: int = 300
    seed_sd: float = 1.0  # TER points, per student
    sentence_sd: float = 25.0  # TER points, per student and sentence
    difficulty_sd: float = 20.0  # TER points, per sentence (shared)
    identical: frozenset[str] = field(default_factory=frozenset)  # conditions whose seeds are one student


@dataclass(frozen=True)
class TestSet:
    ref_len: np.ndarray
    difficulty: np.ndarray

    @classmethod
    def draw(cls, noise: Noise, rng: np.random.Generator) -> TestSet:
        return cls(5.0 + rng.poisson(15.0, noise.sentences), rng.normal(0.0, noise.difficulty_sd, noise.sentences))


def simulate_stats(truth: Truth, noise: Noise, seeds: int, rng: np.random.Generator,
                   test_set: TestSet | None = None) -> dict[str, list[np.ndarray]]:
    """{condition: [(sentences, 2) TER statistics per seed]} of one simulated run."""
    ts = test_set or TestSet.draw(noise, rng)
    out: dict[str, list[np.ndarray]] = {}
    for cond, mean in asdict(truth).items():
        students = 1 if cond in noise.identical else seeds
        stats = []
        for _ in range(students):
            rate = mean + ts.difficulty + rng.normal(0.0, noise.seed_sd) + rng.normal(0.0, noise.sentence_sd,
                                                                                       noise.sentences)
            stats.append(np.stack([np.clip(rate, 0.0, None) / 100.0 * ts.ref_len, ts.ref_len], axis=1))
        out[cond] = stats * seeds if students == 1 else stats
    return out


def score(stats: dict[str, list[np.ndarray]], *, resamples: int, seed: int, per_seed: bool = False):
    from regurg_bench.scoring.matrix import score_stats

    return score_stats("ter", stats, CONDITIONS, GENERATORS, resamples=resamples, seed=seed, level=0.95,
                       per_seed=per_seed)


def _effect(fx, claim: str):
    family, key = CLAIMS[claim]
    tree = getattr(fx, family)
    return tree[key[0]] if len(key) == 1 else tree[key[0]][key[1]]


def claim_outcomes(scored) -> dict[str, dict[str, object]]:
    """Per read claim: its pooled verdict word, unadjusted p, and robustness (with per-seed verdicts)."""
    from regurg_bench.scoring.verdicts import robustness, short_verdict, verdict

    out = {}
    for claim in CLAIMS:
        e = _effect(scored.effects, claim)
        words = [short_verdict(_effect(fx, claim)) for fx in scored.per_seed_effects]
        eff = min(scored.bootstrap.effective_seeds[c] for c in ("real", *CLAIMS[claim][1]))
        out[claim] = {"verdict": verdict(e), "p": e.p_value, "robustness": robustness(e, words, eff) if words else None}
    return out


def rejection_rates(truth: Truth, noise: Noise, seeds: int, sims: int, *, resamples: int = 1000,
                    seed: int = 0) -> dict[str, dict[str, float]]:
    """Per claim: the share of simulated runs whose final verdict is holds or contradicted ("decided"), and
    whose unadjusted p is <= 0.05 ("marginal")."""
    rng = np.random.default_rng(seed)
    counts = {c: {"decided": 0, "marginal": 0} for c in CLAIMS}
    for i in range(sims):
        outcome = claim_outcomes(score(simulate_stats(truth, noise, seeds, rng), resamples=resamples, seed=i))
        for claim, o in outcome.items():
            counts[claim]["decided"] += o["verdict"] in ("holds", "contradicted")
            counts[claim]["marginal"] += o["p"] is not None and o["p"] <= 0.05
    return {c: {k: v / sims for k, v in r.items()} for c, r in counts.items()}


def replication(truths: Iterable[Truth], noise: Noise, seeds: int, *, resamples: int = 1000,
                seed: int = 0) -> dict[str, dict[str, int]]:
    """Two runs of each truth on one test set with independent seeds (another machine, another draw): per
    robustness class of run A, how many of its decided verdicts run B gives the same word, another decided
    word (a flip), or none (inconclusive)."""
    rng = np.random.default_rng(seed)
    tally = {r: {"same": 0, "inconclusive": 0, "opposite": 0} for r in ("robust", "fragile")}
    for i, truth in enumerate(truths):
        ts = TestSet.draw(noise, rng)
        a, b = (claim_outcomes(score(simulate_stats(truth, noise, seeds, rng, ts), resamples=resamples,
                                     seed=2 * i + j, per_seed=True)) for j in (0, 1))
        for claim in CLAIMS:
            cls = a[claim]["robustness"]
            if cls not in tally:
                continue
            other = b[claim]["verdict"]
            key = ("same" if other == a[claim]["verdict"] else
                   "opposite" if other in ("holds", "contradicted") else "inconclusive")
            tally[cls][key] += 1
    return tally
