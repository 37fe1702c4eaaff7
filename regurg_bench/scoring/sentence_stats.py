"""sacrebleu's per-sentence sufficient statistics, computed once per content and in parallel.

Every corpus score, bootstrap replicate and recomputation in regurg-bench starts from the per-sentence
statistics of one hypothesis file against its references (sacrebleu's ``_extract_corpus_statistics``;
TER's take ~5 s for 1,004 sentences). They are computed here only:

* **keyed by content**: sha256 of (format version, the metric's sacrebleu signature, the hypotheses, the
  references), so the protocol's scoring, ``regurg-bench verify``, the leaderboard verifier, a re-score
  and the lm-eval task's own aggregation (:mod:`regurg_bench.evaluation.corpus_aggregations`) all reuse
  one computation, and any change of text, metric setting or sacrebleu version is a new key;
* **cached on disk**: ``<cache>/sentence_stats/<key[:2]>/<key>.npy``, written atomically (a killed or
  concurrent writer never leaves half a file; two writers of one key write the same bytes), plus a
  memo in the process; ``REGURG_BENCH_SCORE_CACHE=0`` turns both off (as for the segment-score cache);
* **in parallel**: :func:`sentence_stats_many` computes the missing ones in chunks of 256 sentences
  in a process pool (spawned once per process, one thread per worker; ``REGURG_BENCH_SCORE_WORKERS``
  sets its size, 1 turns it off), across files and within one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from pathlib import Path

import numpy as np

from regurg_bench.assets import cache_dir
from regurg_bench.atomic import atomic_write
from regurg_bench.hashing import parts_sha256
from regurg_bench.metric_table import corpus_metric
from regurg_bench.metrics.cache import cache_disabled
from regurg_bench.scoring.fast_ter import fast_ter

#: part of every key: bump when the stored array's meaning changes
FORMAT = "sentence-stats/1"
_MEMO: dict[str, np.ndarray] = {}
_MEMO_LIMIT = 4096
#: sentences per task of the process pool (TER: ~1 s of work each on 1,004 Acts verses / 4)
CHUNK = 256
#: processes that compute statistics (default: the CPUs this process may use; 1: no pool)
WORKERS_ENV = "REGURG_BENCH_SCORE_WORKERS"
_POOLS: dict[int, ProcessPoolExecutor] = {}

Job = tuple[str, Sequence[str], Sequence[str]]  # (metric name, hypotheses, references)


def sentence_stats(metric_name: str, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Per-sentence sufficient statistics, shape (sentences, stats), computed now (no cache)."""
    metric = corpus_metric(metric_name)
    with fast_ter():  # TER's edit distance row by row in flat lists: sacrebleu's numbers, ~3x faster
        return np.asarray(metric._extract_corpus_statistics(list(hypotheses), [list(references)]), dtype=np.float64)


@cache
def metric_signature(metric_name: str) -> str:
    """The sacrebleu signature of ``metric_name`` as our tasks configure it (version included)."""
    metric = corpus_metric(metric_name)
    metric.corpus_score(["x"], [["x"]])  # sacrebleu knows "nrefs" only after scoring once
    return str(metric.get_signature())


def stats_key(metric_name: str, hypotheses: Sequence[str], references: Sequence[str]) -> str:
    """The content key of one file's statistics."""
    return parts_sha256(FORMAT, metric_signature(metric_name), list(hypotheses), list(references))


def stats_path(key: str) -> Path:
    return cache_dir() / "sentence_stats" / key[:2] / f"{key}.npy"


def cached_sentence_stats(metric_name: str, hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """:func:`sentence_stats` through the memo and the disk cache (missing: computed in chunks, in parallel)."""
    return sentence_stats_many([(metric_name, hypotheses, references)])[0]


def sentence_stats_many(jobs: Sequence[Job], workers: int | None = None) -> list[np.ndarray]:
    """The statistics of every ``(metric, hypotheses, references)`` job, in order; the missing ones are
    computed in a pool of ``workers`` processes (default ``REGURG_BENCH_SCORE_WORKERS``, else the CPUs this
    process may use)."""
    if cache_disabled():
        return _compute(list(jobs), workers)
    keys = [stats_key(*job) for job in jobs]
    found: dict[str, np.ndarray] = {}
    for key in keys:
        if key not in found:
            hit = _MEMO.get(key)
            found[key] = hit if hit is not None else _read(key)
    missing = {key: job for key, job in zip(keys, jobs, strict=True) if found[key] is None}
    for key, stats in zip(missing, _compute(list(missing.values()), workers), strict=True):
        _write(key, stats)
        found[key] = stats
    for key in keys:
        if len(_MEMO) < _MEMO_LIMIT:
            _MEMO[key] = found[key]
    return [found[key] for key in keys]


def _read(key: str) -> np.ndarray | None:
    try:
        return np.load(stats_path(key), allow_pickle=False)
    except (FileNotFoundError, ValueError, OSError):  # absent, or unreadable: recompute and overwrite
        return None


def _write(key: str, stats: np.ndarray) -> None:
    with atomic_write(stats_path(key), "wb") as handle:
        np.save(handle, stats, allow_pickle=False)


def _compute(jobs: list[Job], workers: int | None) -> list[np.ndarray]:
    """Statistics of ``jobs``, split into chunks of :data:`CHUNK` sentences over a process pool (a sentence's
    statistics do not depend on the others, so the concatenated chunks equal the whole)."""
    workers = workers or _workers()
    chunks = [(j, start) for j, job in enumerate(jobs) for start in range(0, max(len(job[1]), 1), CHUNK)]
    if workers <= 1 or len(chunks) < 2:
        return [sentence_stats(*job) for job in jobs]
    # the slow ones (TER: edit distances) first, so no worker is left with one at the end
    chunks.sort(key=lambda c: jobs[c[0]][0] != "ter")
    args = [(jobs[j][0], list(jobs[j][1][s:s + CHUNK]), list(jobs[j][2][s:s + CHUNK])) for j, s in chunks]
    parts: dict[tuple[int, int], np.ndarray] = {}
    try:
        done = list(_pool(workers).map(_star_sentence_stats, args))
    except BrokenProcessPool:  # a worker died (killed, out of memory): drop the pool, compute here
        _POOLS.pop(workers, None)
        done = [_star_sentence_stats(a) for a in args]
    for chunk, stats in zip(chunks, done, strict=True):
        parts[chunk] = stats
    return [np.concatenate([parts[(j, s)] for s in range(0, max(len(job[1]), 1), CHUNK)])
            for j, job in enumerate(jobs)]


def _pool(workers: int) -> ProcessPoolExecutor:
    """One pool per process and size, kept for the process's life (a protocol run scores and evaluates
    many files: workers start once). spawn, not fork: the caller may hold OpenMP/torch threads, which a
    forked child can deadlock on."""
    import atexit
    import multiprocessing

    pool = _POOLS.get(workers)
    if pool is None:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_one_thread)
        _POOLS[workers] = pool
        atexit.register(pool.shutdown, cancel_futures=True)
    return pool


def spawn_safe() -> bool:
    """Whether spawned workers can import the main module without running it again: they re-import it
    (multiprocessing's rule), so an unguarded user script calling lm-eval would run twice. Console scripts
    (``lm_eval``, ``regurg-bench``), ``python -m``, pytest and notebooks have the guard or no file."""
    import sys

    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if path is None:
        return True
    try:
        source = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return "__name__" in source and "__main__" in source


def _star_sentence_stats(job: Job) -> np.ndarray:
    return sentence_stats(*job)


def _one_thread() -> None:
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = "1"


def _workers() -> int:
    explicit = os.environ.get(WORKERS_ENV, "").strip()
    if explicit:
        return max(1, int(explicit))
    if not spawn_safe():
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
