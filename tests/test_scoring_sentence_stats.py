"""Sentence statistics: once per content, on disk, in parallel, equal to sacrebleu's."""

from __future__ import annotations

import numpy as np
import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.scoring import sentence_stats as ss


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ss, "_MEMO", {})


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    pairs = load_bible_pairs("en-es", "test")[:40]
    return [p.source for p in pairs], [p.target for p in pairs]


def test_cached_statistics_equal_sacrebleus_and_are_stored_once(texts):
    hyps, refs = texts
    first = ss.cached_sentence_stats("ter", hyps, refs)
    assert np.array_equal(first, ss.sentence_stats("ter", hyps, refs))
    path = ss.stats_path(ss.stats_key("ter", hyps, refs))
    stamp = path.stat().st_mtime_ns
    ss._MEMO.clear()  # a new process: read from disk, not recomputed
    assert np.array_equal(ss.cached_sentence_stats("ter", hyps, refs), first)
    assert path.stat().st_mtime_ns == stamp
    assert list(path.parent.glob(".*.tmp")) == []  # atomic write left no temporary file


def test_key_changes_with_text_and_metric(texts):
    hyps, refs = texts
    key = ss.stats_key("bleu", hyps, refs)
    assert key != ss.stats_key("chrf", hyps, refs)
    assert key != ss.stats_key("bleu", [*hyps[:-1], hyps[-1] + "!"], refs)
    assert key != ss.stats_key("bleu", hyps, [*refs[:-1], refs[-1] + "!"])


def test_parallel_pool_gives_the_serial_numbers_in_order(texts, monkeypatch):
    hyps, refs = texts
    monkeypatch.setattr(ss, "CHUNK", 16)  # each 40-sentence file in three chunks, over two processes
    jobs = [(m, hyps[i:] + hyps[:i], refs) for i, m in enumerate(["bleu", "ter", "chrf", "ter"])]
    pooled = ss.sentence_stats_many(jobs, workers=2)
    for job, got in zip(jobs, pooled, strict=True):
        assert np.array_equal(got, ss.sentence_stats(*job))


def test_cache_can_be_switched_off(texts, monkeypatch):
    monkeypatch.setenv("REGURG_BENCH_SCORE_CACHE", "0")
    hyps, refs = texts
    ss.cached_sentence_stats("bleu", hyps, refs)
    assert not ss.stats_path(ss.stats_key("bleu", hyps, refs)).exists()
