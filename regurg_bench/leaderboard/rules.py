"""The rules of a comparable entry. A rejection names its rule: ``rule 'full-test-set': ...``.

- ``full-test-set``: every student is scored on the whole published test set, every ``doc_id`` exactly
  once (a subset or a ``--limit`` run measures something else, so it is not ranked beside full runs);
- ``required-conditions``: the run scores exactly the conditions its recorded config plans (REAL, one
  REGURG per generator, every enabled mitigation), each with every seed of the config, and the config
  hash is the hash of that recorded config;
- ``same-task-and-signatures``: a known version of a published task, the published test-set fingerprint,
  our metric signatures and a recorded lm-eval version (:mod:`.provenance`);
- ``plausibility``: the share of hypotheses identical to their reference (and to their source) is
  measured per condition. A model that reproduces the test references has seen the test set: at
  :data:`CONTAMINATED_SHARE` or more the entry is flagged ``contaminated`` (shown, ranked after every
  unflagged entry, never first); at :data:`REFUSED_SHARE` or more it is refused.
- ``near-copy``: the share of a condition's hypotheses whose sentence-level chrF against their reference is
  :data:`NEAR_COPY_CHRF` or more (exact copies included): a reference with its last word dropped, a
  paraphrase, a reference with its punctuation changed. Flagged ``near-copy`` from :data:`NEAR_COPY_FLAG`,
  refused from :data:`NEAR_COPY_REFUSED`.
- ``above-real``: a condition trained on regurgitated or mitigated data that beats REAL both by far more than
  its noise allows and by many metric points: ``gain = score_c - score_real`` in the metric's better direction
  (points of BLEU, chrF or TER) and ``z = gain / sqrt(se_c^2 + se_real^2)``, ``se`` the half-width of the
  entry's own interval / 1.96. Flagged ``above-real`` when ``z >=`` :data:`ABOVE_REAL_FLAG_Z` and ``gain >=``
  :data:`ABOVE_REAL_FLAG_POINTS`; refused when ``z >=`` :data:`ABOVE_REAL_REFUSED_Z` and ``gain >=``
  :data:`ABOVE_REAL_REFUSED_POINTS`. Both, because each alone misleads: a one-seed entry's intervals hold
  sentence noise only, so an honest mitigation a hair above REAL can be 4 standard errors away (the tiny
  run: +0.0003 BLEU, z 3.8), and a gain in points means nothing without its noise. A recovery R far above 1
  is this case (R > 1 exactly when the mitigation scores above REAL).
- ``outlier-seed``: one seed of a condition far outside the other seeds' spread:
  ``|x_i - mean(others)| / (s * sqrt(1 + 1/(k-1)))`` with ``s`` the entry's pooled seed standard deviation
  of that metric over every seed but ``x_i`` (:func:`regurg_bench.protocol.tolerance.seed_spread`). Flagged ``outlier-seed`` from
  :data:`OUTLIER_SEED_Z` (never refused: one honest looping student can be far out).
- ``evidence``: the logged samples the numbers come from are stored with the entry (:mod:`.evidence`).

Calibration (``benchmarks/plausibility_calibration.py``, leaderboards/README.md): on the honest default
run (27 students, two kernel settings) no hypothesis reaches sentence chrF 50 (the best is 39.1), no
condition beats REAL by more than z 0.79 (TER, +4.5 points), the largest outlier-seed z is 4.0 (TER: a
looping student); the tiny protocol run raises nothing either (tests/test_leaderboard.py). The thresholds are this board's (bases small enough for a CPU): a
board of strong bases, whose honest students do reach references, must measure its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regurg_bench.leaderboard.schema import RunCondition, SubmissionError

CONTAMINATED_SHARE = 0.10
REFUSED_SHARE = 0.20
CONTAMINATED = "contaminated"
#: sentence chrF (0-100) from which a hypothesis counts as a near-copy of its reference
NEAR_COPY_CHRF = 60.0
NEAR_COPY_FLAG = 0.02
NEAR_COPY_REFUSED = 0.20
ABOVE_REAL_FLAG_Z = 5.0
ABOVE_REAL_FLAG_POINTS = 5.0
ABOVE_REAL_REFUSED_Z = 15.0
ABOVE_REAL_REFUSED_POINTS = 10.0
OUTLIER_SEED_Z = 6.0
NEAR_COPY, ABOVE_REAL, OUTLIER_SEED = "near-copy", "above-real", "outlier-seed"
#: every flag an entry can carry, in the order the page lists them
FLAGS = (CONTAMINATED, NEAR_COPY, ABOVE_REAL, OUTLIER_SEED)

RULES = {
    "full-test-set": "every doc id of the published test set, exactly once",
    "required-conditions": "exactly the conditions and seeds the recorded config plans",
    "same-task-and-signatures": "a published task at a known version, our metric signatures",
    "plausibility": f"under {REFUSED_SHARE:.0%} of hypotheses copy the reference (flagged from "
                    f"{CONTAMINATED_SHARE:.0%})",
    NEAR_COPY: f"under {NEAR_COPY_REFUSED:.0%} of hypotheses reach sentence chrF {NEAR_COPY_CHRF:g} against their "
               f"reference (flagged from {NEAR_COPY_FLAG:.0%})",
    ABOVE_REAL: f"no condition beats REAL by {ABOVE_REAL_REFUSED_Z:g} standard errors and {ABOVE_REAL_REFUSED_POINTS:g} "
                f"points or more (flagged from {ABOVE_REAL_FLAG_Z:g} and {ABOVE_REAL_FLAG_POINTS:g})",
    OUTLIER_SEED: f"no seed lies {OUTLIER_SEED_Z:g} seed standard deviations or more from its condition's other "
                  "seeds (flagged, never refused)",
    "evidence": "the logged samples are stored with the entry and reproduce every number",
}


def violation(rule: str, message: str) -> SubmissionError:
    """A rejection that names its rule."""
    assert rule in RULES, rule
    return SubmissionError(f"rule {rule!r}: {message}")


def check_full_test_set(rel: str, doc_ids: Sequence[int], n_published: int, task: str) -> None:
    """``doc_ids`` (sorted) must be exactly ``0 .. n_published - 1``."""
    if len(set(doc_ids)) != len(doc_ids):
        raise violation("full-test-set", f"{rel}: a doc_id is logged more than once")
    if list(doc_ids) != list(range(n_published)):
        missing = n_published - len(set(doc_ids) & set(range(n_published)))
        outside = sorted(set(doc_ids) - set(range(n_published)))[:5]
        raise violation("full-test-set", f"{rel}: {len(doc_ids)} test sentences logged, but the published test set "
                                         f"of {task} has {n_published} (doc ids 0..{n_published - 1}, each once); "
                                         f"{missing} missing" + (f", out of range: {outside}" if outside else "")
                                         + ". Run with eval.limit: null")


def check_required_conditions(config: dict[str, Any], conditions: dict[str, RunCondition], config_hash: str,
                              resolved: dict[str, Any] | None) -> None:
    """The scored conditions and seeds are exactly what the recorded config plans."""
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.protocol.config import ProtocolConfig, _validate
    from regurg_bench.protocol.plan import planned_conditions

    try:
        cfg: ProtocolConfig = _validate(config, "results.json field 'config'")
    except ConfigError as err:
        raise violation("required-conditions", f"the recorded config is not a valid protocol config: {err}") from None
    if resolved is not None:
        digest = cfg.config_hash(resolved)
        if digest != config_hash:
            raise violation("required-conditions", f"results.json field 'config_hash' is {config_hash}, but the "
                                                   f"recorded config and resolved settings hash to {digest}")
    planned = planned_conditions(cfg)
    missing = [c for c in planned if c not in conditions]
    extra = sorted(set(conditions) - set(planned))
    if missing or extra:
        raise violation("required-conditions", "the run must score exactly the conditions its config plans"
                        + (f"; missing: {', '.join(missing)}" if missing else "")
                        + (f"; not planned: {', '.join(extra)}" if extra else ""))
    for cond, info in conditions.items():
        seeds = sorted(info.seeds)
        if seeds != sorted(cfg.seeds):
            raise violation("required-conditions", f"condition {cond!r} has seeds {seeds}, the config plans "
                                                   f"{sorted(cfg.seeds)}")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def copy_shares(hyps_by_seed: Sequence[Sequence[str]], refs: Sequence[str], sources: Sequence[str]
                ) -> dict[str, float]:
    """Shares of hypotheses (all seeds together) identical, up to whitespace, to their reference and source."""
    total = sum(len(h) for h in hyps_by_seed) or 1
    ref = sum(_same(h, r) for hyps in hyps_by_seed for h, r in zip(hyps, refs, strict=True))
    src = sum(_same(h, s) for hyps in hyps_by_seed for h, s in zip(hyps, sources, strict=True))
    return {"copied_reference": ref / total, "copied_source": src / total}


def plausibility_flags(plausibility: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """``["contaminated"]`` when any condition copies references at the flag level; a rejection naming the
    rule (and the condition) at the refusal level."""
    worst = max(((share["copied_reference"], task, cond) for task, per in plausibility.items()
                 for cond, share in per.items()), default=(0.0, "", ""))
    if worst[0] >= REFUSED_SHARE:
        raise violation("plausibility", f"{worst[0]:.0%} of the hypotheses of condition {worst[2]!r} on {worst[1]} "
                                        f"are identical to their reference (refused from {REFUSED_SHARE:.0%}): a "
                                        "model that reproduces the test references has seen the test set")
    return [CONTAMINATED] if worst[0] >= CONTAMINATED_SHARE else []


def near_copy_share(hyps_by_seed: Sequence[Sequence[str]], refs: Sequence[str]) -> float:
    """Share of hypotheses (all seeds together) whose sentence chrF against their reference is at least
    :data:`NEAR_COPY_CHRF` (sacrebleu's chrF, the metric's own signature settings)."""
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    total = sum(len(h) for h in hyps_by_seed) or 1
    near = sum(chrf.sentence_score(h, [r]).score >= NEAR_COPY_CHRF
               for hyps in hyps_by_seed for h, r in zip(hyps, refs, strict=True))
    return near / total


def near_copy_flags(shares: dict[str, dict[str, float]]) -> list[str]:
    """``["near-copy"]`` from the flag level; a rejection naming the rule and the condition from the refusal level.
    ``shares``: task -> condition -> near-copy share."""
    worst = max(((share, task, cond) for task, per in shares.items() for cond, share in per.items()),
                default=(0.0, "", ""))
    if worst[0] >= NEAR_COPY_REFUSED:
        raise violation(NEAR_COPY, f"{worst[0]:.0%} of the hypotheses of condition {worst[2]!r} on {worst[1]} reach "
                                   f"sentence chrF {NEAR_COPY_CHRF:g} against their reference (refused from "
                                   f"{NEAR_COPY_REFUSED:.0%}; no honest student of this board reaches chrF 50): "
                                   "near-copies of the test references")
    return [NEAR_COPY] if worst[0] >= NEAR_COPY_FLAG else []


def _se(row: Any) -> float:
    return max(float(row.ci_high) - float(row.ci_low), 0.0) / (2 * 1.959963984540054)


def above_real(scores: dict[str, dict[str, Any]], metric: str) -> dict[str, tuple[float, float]]:
    """{condition: (z, gain in points)} of every condition other than REAL against REAL on ``metric`` (positive:
    better than REAL), from the entry's scores and intervals. Conditions with no noise on either side are left
    out."""
    import math

    from regurg_bench.metric_table import higher_is_better

    sign = 1.0 if higher_is_better(metric) else -1.0
    real = scores["real"][metric]
    out = {}
    for cond, per in scores.items():
        if cond == "real":
            continue
        se = math.hypot(_se(per[metric]), _se(real))
        if se > 0:
            gain = sign * (float(per[metric].score) - float(real.score))
            out[cond] = (gain / se, gain)
    return out


def outlier_seed_z(scores: dict[str, dict[str, Any]], metric: str) -> dict[tuple[str, int], float]:
    """{(condition, seed index): z} of each seed (of conditions with 3 seeds or more) against the mean of its
    condition's other seeds, in units of the pooled seed standard deviation of every seed but itself (so an
    outlier does not widen its own yardstick); empty where no such spread exists."""
    import math

    from regurg_bench.protocol.tolerance import seed_spread

    per_seed = {c: [float(x) for x in per[metric].per_seed] for c, per in scores.items()}
    out: dict[tuple[str, int], float] = {}
    for cond, xs in per_seed.items():
        for i, x in enumerate(xs if len(xs) >= 3 else []):
            others = xs[:i] + xs[i + 1:]
            sd = seed_spread([v for c, v in per_seed.items() if c != cond] + [others]).sd
            if sd:
                out[(cond, i)] = abs(x - sum(others) / len(others)) / (sd * math.sqrt(1 + 1 / len(others)))
    return out


def effect_flags(scores: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """``above-real`` and ``outlier-seed`` flags of an entry's scores (task -> condition -> metric -> score
    with ``score``, ``ci_low``, ``ci_high``, ``per_seed``); a rejection from the ``above-real`` refusal level."""
    flags: list[str] = []
    for task, per in scores.items():
        metrics = list(per.get("real", {}))
        for metric in metrics:
            for cond, (z, gain) in sorted(above_real(per, metric).items()):
                if z >= ABOVE_REAL_REFUSED_Z and gain >= ABOVE_REAL_REFUSED_POINTS:
                    raise violation(ABOVE_REAL, f"condition {cond!r} beats REAL on {task} {metric} by {gain:.1f} points "
                                                f"and {z:.1f} standard errors (refused from {ABOVE_REAL_REFUSED_POINTS:g} "
                                                f"and {ABOVE_REAL_REFUSED_Z:g}): no data regurgitated by a model, "
                                                "nor a mitigation of it, trains a student that far above one "
                                                "trained on the real data")
                if z >= ABOVE_REAL_FLAG_Z and gain >= ABOVE_REAL_FLAG_POINTS:
                    flags.append(ABOVE_REAL)
            if any(v >= OUTLIER_SEED_Z for v in outlier_seed_z(per, metric).values()):
                flags.append(OUTLIER_SEED)
    return flags


def entry_flags(plausibility: dict[str, dict[str, dict[str, float]]], near_copies: dict[str, dict[str, float]],
                scores: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The flags of an entry, each once, in :data:`FLAGS` order, from its copy shares, near-copy shares and scores
    (a rejection at any rule's refusal level)."""
    raised = set(plausibility_flags(plausibility)) | set(near_copy_flags(near_copies)) | set(effect_flags(scores))
    return [f for f in FLAGS if f in raised]
