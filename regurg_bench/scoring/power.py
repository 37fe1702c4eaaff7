"""What an inconclusive verdict could have seen: the smallest detectable effect and the seeds it would take.

For one effect, the run's noise is read off two intervals of the same bootstrap: the full one (test
sentences and seeds) and the sentence-only one (:meth:`BootstrapScores.sentence_only`, the interval with
infinitely many seeds). With ``z`` the normal quantile, SE = half-width / z(level); the seed part of the
variance is SE_full^2 - SE_sentences^2 and shrinks as 1/k with k seeds per condition, the sentence part
does not. At Holm's strictest threshold for a family of m comparisons (alpha / m, two-sided):

- detectable = (z(1 - alpha / 2m) + z(power)) * SE_full: the smallest |effect| this run detects with the
  given power (80 %);
- seeds needed for the observed effect: the smallest k' with (z(1 - alpha / 2m) + z(power)) * SE(k') <= |estimate|,
  SE(k')^2 = SE_sentences^2 + (SE_full^2 - SE_sentences^2) * k / k'. None when even infinitely many seeds
  would not (the test set is too small for that effect: sentence noise alone hides it).

These are normal approximations of the bootstrap's own spread; the full interval's small-sample t tails
make them conservative at few seeds (more seeds also shrink t's quantile, which k' ignores).
"""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

from regurg_bench.scoring.effects import Effect

POWER = 0.8


def _se(effect: Effect, level: float) -> float | None:
    if effect.ci_low is None or effect.ci_high is None:
        return None
    if not (math.isfinite(effect.ci_low) and math.isfinite(effect.ci_high)):
        return None
    return (effect.ci_high - effect.ci_low) / 2.0 / NormalDist().inv_cdf(0.5 + level / 2.0)


def with_detectability(effect: Effect, sentences_only: Effect, seeds: int, family_size: int,
                       power: float = POWER) -> Effect:
    """``effect`` with ``detectable``, ``seeds_needed`` and ``seed_share`` filled in (unchanged when its
    interval is undefined or unbounded)."""
    se_full, se_sent = _se(effect, effect.level), _se(sentences_only, effect.level)
    if se_full is None or se_sent is None or se_full <= 0.0:
        return effect
    alpha = 1.0 - effect.level
    z = NormalDist().inv_cdf(1.0 - alpha / (2 * max(1, family_size))) + NormalDist().inv_cdf(power)
    var_seed = max(se_full ** 2 - se_sent ** 2, 0.0)
    seeds_needed = None
    if effect.estimate is not None and var_seed > 0.0 and seeds >= 1:
        room = (abs(effect.estimate) / z) ** 2 - se_sent ** 2
        if room > 0.0:
            seeds_needed = max(2, math.ceil(seeds * var_seed / room))
    return replace(effect, detectable=z * se_full, seeds_needed=seeds_needed, seed_share=var_seed / se_full ** 2)
