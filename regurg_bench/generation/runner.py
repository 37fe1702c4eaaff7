"""Stream pairs through a generator in batches, behind the generation cache, with a progress bar."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from regurg_bench.corpora.base import Pair
from regurg_bench.generation.base import GenerationError, GenerationResult, Generator
from regurg_bench.generation.cache import GenerationCache

log = logging.getLogger(__name__)


@dataclass
class GenerationStats:
    """Counters of one :func:`generate_targets` run (filled in place while it streams)."""

    pairs: int = 0
    cached: int = 0  # answered from the cache (ok, or a failure that will not be retried)
    generated: int = 0  # sources sent to the generator in this run
    ok: int = 0
    empty: int = 0
    failed: int = 0
    #: Tokens of the results generated in this run (see :class:`GenerationResult` for what a token is).
    tokens: int = 0
    #: Wall time spent inside ``Generator.generate`` (excludes cache look-ups and the consumer).
    generate_seconds: float = 0.0
    wall_seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def pairs_per_second(self) -> float:
        return self.generated / self.generate_seconds if self.generate_seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.generate_seconds if self.generate_seconds else 0.0

    def to_dict(self) -> dict[str, Any]:
        return vars(self) | {"pairs_per_second": round(self.pairs_per_second, 3),
                             "tokens_per_second": round(self.tokens_per_second, 3)}


def generate_targets(generator: Generator, pairs: Iterable[Pair], cache: GenerationCache | None = None, *,
                     batch_size: int = 32, progress: bool | None = None, total: int | None = None,
                     stats: GenerationStats | None = None, description: str | None = None,
                     ) -> Iterator[tuple[Pair, GenerationResult]]:
    """Yield ``(pair, result)`` for every pair, in input order, generating only what the cache lacks.

    * Pairs are read lazily, ``batch_size`` at a time (memory stays at one batch).
    * Each source is looked up under ``generator.signature()``; sources never tried, or tried and
      failed/empty fewer than ``cache.max_attempts`` times, go to :meth:`Generator.generate`
      (deduplicated within the batch, grouped by direction). Their results are committed to the
      cache as one atomic batch *before* they are yielded, so a consumer that saw a result can rely on
      it surviving a crash.
    * Results of failed or empty generations are yielded too (``result.ok`` is False, ``result.target``
      is ``None``): the caller decides whether to drop the pair. They are never turned into targets.
    * ``progress``: a rich progress bar with pairs/s and tokens/s on stderr (``None``: only when stderr
      is a terminal; a summary line is logged at the end either way). ``total`` sizes the bar
      (default ``len(pairs)`` when it has one).
    * ``stats``: a :class:`GenerationStats` to fill in place (the function is a generator, so it cannot
      return one).

    Exceptions from the generator (a misconfiguration, an unsupported direction) propagate; rows
    committed before stay in the cache.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    stats = stats if stats is not None else GenerationStats()
    signature = generator.signature()
    if total is None and hasattr(pairs, "__len__"):
        total = len(pairs)  # type: ignore[arg-type]
    show = sys.stderr.isatty() if progress is None else progress
    bar = _Progress(description or f"generating ({generator.kind})", total) if show else None
    checked: set[tuple[str, str]] = set()
    started = time.perf_counter()
    iterator = iter(pairs)
    try:
        while batch := list(islice(iterator, batch_size)):
            for direction in {(p.src_lang, p.tgt_lang) for p in batch} - checked:
                generator.check_direction(*direction)
                checked.add(direction)
            results = _run_batch(generator, signature, batch, cache, stats)
            stats.pairs += len(batch)
            if bar is not None:
                bar.update(stats)
            yield from zip(batch, results, strict=True)
    finally:
        stats.wall_seconds = time.perf_counter() - started
        if bar is not None:
            bar.close()
        if stats.pairs:
            log.info("generation %s: %d pairs (%d from cache, %d generated: %d ok, %d empty, %d failed), "
                     "%.1f pairs/s, %.1f tokens/s", signature.short(), stats.pairs, stats.cached,
                     stats.generated, stats.ok, stats.empty, stats.failed, stats.pairs_per_second,
                     stats.tokens_per_second)


def _run_batch(generator: Generator, signature, batch: list[Pair], cache: GenerationCache | None,
               stats: GenerationStats) -> list[GenerationResult]:
    if cache is not None:
        cache.refresh(signature)  # rows other processes committed meanwhile: fewer duplicates
    known: dict[tuple[str, str, str], GenerationResult] = {}
    todo: dict[tuple[str, str], list[str]] = {}
    for pair in batch:
        ident = (pair.source, pair.src_lang, pair.tgt_lang)
        if ident in known or pair.source in todo.get(ident[1:], ()):
            continue
        entry = cache.lookup(signature, *ident) if cache is not None else None
        if cache is not None and not cache.needs_generation(entry):
            assert entry is not None
            known[ident] = entry.result
        else:
            todo.setdefault(ident[1:], []).append(pair.source)
    fresh: dict[tuple[str, str, str], GenerationResult] = {}
    for (src_lang, tgt_lang), sources in todo.items():
        t0 = time.perf_counter()
        results = generator.generate(sources, src_lang, tgt_lang)
        stats.generate_seconds += time.perf_counter() - t0
        if len(results) != len(sources):
            raise GenerationError(f"{type(generator).__name__}.generate returned {len(results)} results for "
                                  f"{len(sources)} sources")
        for source, result in zip(sources, results, strict=True):
            fresh[(source, src_lang, tgt_lang)] = result
    if cache is not None and fresh:
        entries = cache.commit(signature, [(*ident, result) for ident, result in fresh.items()])
        # What the cache resolves to (another process may have committed an ok row first).
        fresh = {ident: dataclasses.replace(entry.result, cached=False)
                 for ident, entry in zip(fresh, entries, strict=True)}
    for result in fresh.values():
        stats.generated += 1
        stats.tokens += result.n_tokens or 0
        setattr(stats, result.status, getattr(stats, result.status) + 1)
        if not result.ok:
            stats.reasons[result.reason or "unknown"] = stats.reasons.get(result.reason or "unknown", 0) + 1
    out = []
    for pair in batch:
        ident = (pair.source, pair.src_lang, pair.tgt_lang)
        if ident in fresh:
            out.append(fresh[ident])
        else:
            stats.cached += 1
            out.append(known[ident])
    return out


class _Progress:
    """A rich progress bar: done/total, pairs/s and tokens/s of the generation itself, cache hits."""

    def __init__(self, description: str, total: int | None) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), MofNCompleteColumn(), BarColumn(bar_width=20),
                                  TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, rate="")

    def update(self, stats: GenerationStats) -> None:
        rate = (f"{stats.pairs_per_second:,.1f} pairs/s {stats.tokens_per_second:,.0f} tok/s "
                f"cached {stats.cached} failed {stats.failed + stats.empty}")
        self._progress.update(self._task, completed=stats.pairs, rate=rate)

    def close(self) -> None:
        self._progress.stop()
