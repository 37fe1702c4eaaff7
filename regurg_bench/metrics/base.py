"""Common base of the neural segment metrics: input checks, the score cache, the signature.

Each metric scores segments (one float per hypothesis) and reports a system score as their mean (as
COMET does). A metric is identified by its *signature*, a sacrebleu-style ``key:value|...`` string
that names everything that changes the numbers (model and the sha256 of its weights, library
version, mode); the signature is also part of every cache key, so a different checkpoint can never
be served another checkpoint's scores. Test-only metrics (untrained checkpoints built by the test
suite) carry ``test-only:yes`` in the signature and ``test_only = True``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from regurg_bench.metrics.cache import ScoreCache, cache_disabled, score_key


class MetricError(RuntimeError):
    """A metric could not be configured or computed. The message says what to do."""


def format_signature(fields: dict[str, object]) -> str:
    return "|".join(f"{k}:{v}" for k, v in fields.items())


class SegmentMetric(ABC):
    #: Key under which the metric is reported (lm-eval results, reports).
    name: str = ""
    #: Human-readable name, e.g. "mUSE cross-lingual cosine".
    title: str = ""
    higher_is_better: bool = True
    needs_source: bool = False
    needs_reference: bool = False

    def __init__(self, cache: ScoreCache | None | bool = True) -> None:
        if cache is True:
            cache = None if cache_disabled() else ScoreCache()
        self.cache: ScoreCache | None = cache or None
        #: Statistics of the last :meth:`score` call (hits, computed).
        self.last_stats: dict[str, int] = {}

    # -- to implement ------------------------------------------------------------------------------
    @abstractmethod
    def signature(self) -> str:
        """``name:...|model:...|sha:...|version:...`` (cheap after the first call)."""

    @abstractmethod
    def _compute(self, sources: list[str | None], hypotheses: list[str],
                 references: list[str | None]) -> list[float]:
        """Scores of unique, uncached segments, in order."""

    @property
    def test_only(self) -> bool:
        return False

    # -- public ------------------------------------------------------------------------------------
    def score(self, hypotheses: Sequence[str], sources: Sequence[str] | None = None,
              references: Sequence[str] | None = None) -> list[float]:
        """One score per hypothesis. Cached segments are not recomputed; duplicates are computed once."""
        hyps = [str(h) for h in hypotheses]
        srcs = self._column(sources, "sources", self.needs_source, len(hyps))
        refs = self._column(references, "references", self.needs_reference, len(hyps))
        sig = self.signature()
        keys = [score_key(sig, s, h, r) for s, h, r in zip(srcs, hyps, refs, strict=True)]
        known = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[str, tuple[str | None, str, str | None]] = {}
        for k, s, h, r in zip(keys, srcs, hyps, refs, strict=True):
            if k not in known and k not in todo:
                todo[k] = (s, h, r)
        if todo:
            cols = list(zip(*todo.values(), strict=True))
            computed = [float(x) for x in self._compute(list(cols[0]), list(cols[1]), list(cols[2]))]
            if len(computed) != len(todo):
                raise MetricError(f"{self.name}: got {len(computed)} scores for {len(todo)} segments")
            bad = [v for v in computed if not math.isfinite(v)]
            if bad:
                raise MetricError(f"{self.name}: the model returned non-finite scores ({bad[:3]})")
            new = dict(zip(todo, computed, strict=True))
            if self.cache is not None:
                self.cache.put_many(new.items(), sig)
            known = {**known, **new}
        self.last_stats = {"segments": len(hyps), "computed": len(todo),
                           "cached": len(set(keys)) - len(todo)}
        return [known[k] for k in keys]

    def corpus_score(self, hypotheses: Sequence[str], sources: Sequence[str] | None = None,
                     references: Sequence[str] | None = None) -> float:
        """System score: the mean of the segment scores."""
        scores = self.score(hypotheses, sources, references)
        if not scores:
            raise MetricError(f"{self.name}: no segments to score")
        return sum(scores) / len(scores)

    def describe(self) -> dict[str, object]:
        """What reports record next to a score."""
        return {"name": self.name, "title": self.title, "signature": self.signature(),
                "higher_is_better": self.higher_is_better, "test_only": self.test_only}

    # -- internals ---------------------------------------------------------------------------------
    def _column(self, values: Sequence[str] | None, what: str, needed: bool, n: int) -> list[str | None]:
        if not needed:
            return [None] * n
        if values is None:
            raise MetricError(f"{self.name} needs {what}")
        values = [str(v) for v in values]
        if len(values) != n:
            raise MetricError(f"{self.name}: {len(values)} {what} for {n} hypotheses")
        return values
