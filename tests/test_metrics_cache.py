"""The score cache and the caching logic of the metric base class (real SQLite, real processes)."""

from __future__ import annotations

import math
import multiprocessing as mp

import pytest

from regurg_bench.metrics.base import MetricError, SegmentMetric
from regurg_bench.metrics.cache import ScoreCache, score_key


def test_key_separates_fields_signature_and_missing_values():
    k = score_key("sig", "a", "b", "c")
    assert k == score_key("sig", "a", "b", "c")
    assert len({k, score_key("sig2", "a", "b", "c"), score_key("sig", "ab", "", "c"),
                score_key("sig", None, "b", "c"), score_key("sig", "", "b", "c"),
                score_key("sig", "a", "b", None)}) == 6


def test_roundtrip_persists_across_connections(tmp_path):
    path = tmp_path / "s.sqlite"
    cache = ScoreCache(path)
    cache.put_many([("k1", 0.5), ("k2", -1.25)], "sig")
    cache.close()
    again = ScoreCache(path)
    assert again.get_many(["k1", "k2", "k3"]) == {"k1": 0.5, "k2": -1.25}
    assert again.count("sig") == 2 and again.count("other") == 0


def test_non_finite_scores_are_refused_and_the_batch_is_not_written(tmp_path):
    cache = ScoreCache(tmp_path / "s.sqlite")
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="non-finite"):
            cache.put_many([("ok", 1.0), ("bad", bad)], "sig")
    assert cache.count() == 0


def _writer(path, start):
    cache = ScoreCache(path)
    for i in range(start, start + 200, 20):
        cache.put_many([(f"k{j}", float(j)) for j in range(i, i + 20)], "sig")


def test_concurrent_processes_write_safely(tmp_path):
    path = tmp_path / "s.sqlite"
    ScoreCache(path)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, s)) for s in (0, 200, 400)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    got = ScoreCache(path).get_many([f"k{j}" for j in range(600)])
    assert len(got) == 600 and got["k599"] == 599.0


class _LengthRatio(SegmentMetric):
    """A deterministic metric that records what it was asked to compute."""

    name = "len_ratio"
    needs_reference = True

    def __init__(self, cache, version=1):
        super().__init__(cache=cache)
        self.calls: list[list[str]] = []
        self.version = version

    def signature(self):
        return f"name:len_ratio|version:{self.version}"

    def _compute(self, sources, hypotheses, references):
        self.calls.append(list(hypotheses))
        return [len(h) / max(1, len(r)) for h, r in zip(hypotheses, references, strict=True)]


def test_base_computes_only_missing_unique_segments(tmp_path):
    cache = ScoreCache(tmp_path / "s.sqlite")
    m = _LengthRatio(cache)
    hyps, refs = ["aa", "b", "aa"], ["aaaa", "bb", "aaaa"]
    first = m.score(hyps, references=refs)
    assert first == [0.5, 0.5, 0.5] and m.calls == [["aa", "b"]]
    assert m.last_stats == {"segments": 3, "computed": 2, "cached": 0}
    assert m.score(hyps + ["ccc"], references=refs + ["c"]) == [0.5, 0.5, 0.5, 3.0]
    assert m.calls[-1] == ["ccc"] and m.last_stats["cached"] == 2
    # A new signature never sees the old scores.
    other = _LengthRatio(cache, version=2)
    other.score(hyps, references=refs)
    assert other.calls == [["aa", "b"]]


def test_base_rejects_missing_or_misaligned_inputs(tmp_path):
    m = _LengthRatio(ScoreCache(tmp_path / "s.sqlite"))
    with pytest.raises(MetricError, match="needs references"):
        m.score(["a"])
    with pytest.raises(MetricError, match="2 references for 1 hypotheses"):
        m.score(["a"], references=["a", "b"])
