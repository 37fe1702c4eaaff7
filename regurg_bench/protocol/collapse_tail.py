""""The tail of the vocabulary disappears first", as a verdict with an interval.

The human targets of the real split define two sets of word types: the **tail** (seen at most
``collapse.tail_max_count`` times) and the **head** (at least ``collapse.head_min_count`` times). A
generation's targets *keep* a type when it occurs in them. For each mode and generation k the statistic is

    gap_k = mean over head types of kept  -  mean over tail types of kept

where a type's ``kept`` is the share of seeds whose generation-k targets contain it. The interval resamples
**word types** (tail and head types independently, with replacement, ``scoring.resamples`` times, seeded by
``scoring.seed``) and takes the percentile interval at ``scoring.level``. The claim *holds* when the interval
of every generation lies above 0 (an intersection-union test: each generation at its own level, no
correction needed), is *contradicted* when every interval lies below 0, and is *inconclusive* otherwise.

What this interval covers: which types happen to fall in the tail and the head (the types are the sampled
units), with the seeds averaged into each type's value. It does not model that types co-occur in the same
sentences. ``tests/test_protocol_collapse_tail.py`` simulates types with known retention rates and runs this
function: false "holds" under equal retention and the power against a lower tail retention are shown there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from regurg_bench.scoring.bootstrap import percentile_interval


def kept_matrix(types: Sequence[str], kept_by_seed: Sequence[set[str]]) -> np.ndarray:
    """Per type, the share of seeds whose targets contain it (float, shape (len(types),))."""
    if not kept_by_seed:
        return np.zeros(len(types))
    return np.array([sum(t in kept for kept in kept_by_seed) / len(kept_by_seed) for t in types], dtype=float)


#: fewer tail or head types than this give no interval: a percentile bootstrap over a handful of units is
#: too narrow (3 tail types all lost and 3 head types all kept resample to [1, 1])
MIN_TYPES = 20


def gap_interval(tail: np.ndarray, head: np.ndarray, *, resamples: int, seed: int, level: float) -> dict[str, Any]:
    """gap = mean(head) - mean(tail) and its percentile interval over resampled types (no interval, and an
    undefined verdict, under :data:`MIN_TYPES` of either)."""
    if min(len(tail), len(head)) < MIN_TYPES:
        return {"estimate": float(head.mean() - tail.mean()) if len(tail) and len(head) else None,
                "ci_low": None, "ci_high": None, "tail_types": len(tail), "head_types": len(head)}
    rng = np.random.default_rng(seed)
    reps = (head[rng.integers(0, len(head), (resamples, len(head)))].mean(axis=1)
            - tail[rng.integers(0, len(tail), (resamples, len(tail)))].mean(axis=1))
    lo, hi = percentile_interval(reps, level)
    return {"estimate": float(head.mean() - tail.mean()), "ci_low": lo, "ci_high": hi,
            "tail_kept": float(tail.mean()), "head_kept": float(head.mean()),
            "tail_types": len(tail), "head_types": len(head)}


def verdict(per_generation: Sequence[dict[str, Any]]) -> str:
    """holds: every generation's interval above 0; contradicted: every one below; else inconclusive."""
    if not per_generation or any(g["ci_low"] is None for g in per_generation):
        return "undefined"
    if all(g["ci_low"] > 0 for g in per_generation):
        return "holds"
    if all(g["ci_high"] < 0 for g in per_generation):
        return "contradicted"
    return "inconclusive"


def tail_claim_intervals(tail: Sequence[str], head: Sequence[str], kept: Sequence[Sequence[set[str]]], *,
                         resamples: int, seed: int, level: float) -> tuple[str, list[dict[str, Any]]]:
    """``kept[k-1]``: per seed, the word types of generation k's targets. The verdict and each generation's
    interval (one resampling seed per generation, derived from ``seed``)."""
    per_generation = []
    for k, by_seed in enumerate(kept, 1):
        g = gap_interval(kept_matrix(tail, by_seed), kept_matrix(head, by_seed),
                         resamples=resamples, seed=seed + k, level=level)
        per_generation.append({"generation": k} | g)
    return verdict(per_generation), per_generation
