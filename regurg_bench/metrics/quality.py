"""The reference-free, per-instance quality signal for mitigation M1 (filtering generated pairs).

COMET-QE when a reference-free COMET checkpoint is configured (``REGURG_BENCH_COMET_QE_MODEL`` or
``qe_model=``), else the offline mUSE cross-lingual cosine (source ↔ hypothesis). The returned
:class:`QualitySignal` says which one was used (name, signature, test-only flag), so a filtered
dataset can record what it was filtered with; the two are on different scales and never mixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from regurg_bench.metrics.base import SegmentMetric


@dataclass(frozen=True)
class QualitySignal:
    scores: list[float]
    metric: str
    signature: str
    test_only: bool


def quality_metric(qe_model: str | None = None) -> SegmentMetric:
    from regurg_bench.metrics.comet import configured_comet
    from regurg_bench.metrics.similarity import MuseCosine

    comet = configured_comet(qe_model, qe=True)
    if comet is not None:
        if not comet.referenceless:
            raise ValueError(f"{qe_model or 'the configured QE checkpoint'} is reference-based; M1 needs a "
                             "reference-free (cometkiwi-class) checkpoint")
        return comet
    return MuseCosine("source")


def quality_signal(sources: Sequence[str], hypotheses: Sequence[str],
                   qe_model: str | None = None) -> QualitySignal:
    metric = quality_metric(qe_model)
    scores = metric.score(hypotheses, sources=sources)
    return QualitySignal(scores, metric.name, metric.signature(), metric.test_only)
