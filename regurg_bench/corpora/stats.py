"""Descriptive statistics of a corpus (``regurg-bench corpus stats``)."""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable
from typing import Any

from regurg_bench.corpora.base import Pair, PairFingerprint


def corpus_statistics(pairs: Iterable[Pair]) -> dict[str, Any]:
    """Counts, whitespace-token lengths, duplicates and the content fingerprint, in one pass.

    Memory grows with the number of pairs only through the length lists and the duplicate sets of
    8-byte hashes, so it stays small for corpora of a few million pairs.
    """
    fingerprint = PairFingerprint()
    src_len: list[int] = []
    tgt_len: list[int] = []
    seen_src: set[bytes] = set()
    dup_src = 0
    for p in pairs:
        fingerprint.update(p)
        src_len.append(len(p.source.split()))
        tgt_len.append(len(p.target.split()))
        key = hashlib.blake2b(p.source.encode("utf-8"), digest_size=8).digest()
        dup_src += key in seen_src
        seen_src.add(key)
    n = len(src_len)
    if n == 0:
        return {"pairs": 0, "fingerprint": fingerprint.hexdigest()}
    return {
        "pairs": n,
        "source_words": sum(src_len),
        "target_words": sum(tgt_len),
        "source_words_mean": statistics.fmean(src_len),
        "target_words_mean": statistics.fmean(tgt_len),
        "source_words_max": max(src_len),
        "target_words_max": max(tgt_len),
        "length_ratio_tgt_src": sum(tgt_len) / max(1, sum(src_len)),
        "duplicate_sources": dup_src,
        "fingerprint": fingerprint.hexdigest(),
    }
