"""Deterministic, order-independent selection of pairs by a keyed hash of their id.

Every choice a build makes (which sources are sampled, which pairs of a mix get generated targets,
which pairs form a ladder rung or a fraction of the real data) compares ``u(seed, purpose, id)``, a
uniform number in [0, 1) derived from the id, with a threshold. So the same config and seed select
the same pairs on every machine, whatever order the corpus is read in, and nested selections
(a 1,000-pair rung inside the 2,000-pair rung; the 25 % mix's generated pairs inside the 50 % mix's)
come for free. Exact sizes come from thresholds computed in a first pass over the ids, which keeps
memory at 8 bytes per pair (a million pairs: 8 MB) instead of holding the pairs.
"""

from __future__ import annotations

import hashlib

import numpy as np

_SCALE = float(2**64)


def unit_hash(seed: int, purpose: str, pair_id: str) -> float:
    """A uniform number in [0, 1) from (seed, purpose, id): blake2b, 64 bits."""
    digest = hashlib.blake2b(f"{seed}\x00{purpose}\x00{pair_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def threshold_for_count(values: np.ndarray, count: int) -> float:
    """The smallest t such that exactly ``count`` of ``values`` are < t (values are distinct a.s.).

    ``count >= len(values)`` selects everything (t = inf); ``count <= 0`` selects nothing (t = -inf).
    """
    if count >= len(values):
        return float("inf")
    if count <= 0:
        return float("-inf")
    return float(np.partition(values, count)[count])
