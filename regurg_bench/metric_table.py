"""The one table of metric names, labels and directions, and the sacrebleu objects behind them.

Every module that lists metrics, labels them in a table, or needs to know whether higher is better
reads it from here (lm-eval task YAML, scoring, reports, the leaderboard). Importing this module does
not import sacrebleu; :func:`corpus_metric` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MetricInfo:
    """One metric: its name as lm-eval reports it, a display label and its direction."""

    name: str
    label: str
    higher_is_better: bool
    #: ``"sacrebleu"``: a corpus metric recomputed from logged samples; ``"neural"``: a segment metric.
    family: str
    #: sacrebleu class name and keyword arguments (as lm-eval's aggregation configures it).
    sacrebleu: tuple[str, dict[str, Any]] | None = field(default=None, compare=False)


METRICS: dict[str, MetricInfo] = {m.name: m for m in (
    MetricInfo("bleu", "BLEU", True, "sacrebleu", ("BLEU", {})),
    MetricInfo("chrf", "chrF", True, "sacrebleu", ("CHRF", {})),
    MetricInfo("chrf++", "chrF++", True, "sacrebleu", ("CHRF", {"word_order": 2})),
    MetricInfo("ter", "TER", False, "sacrebleu", ("TER", {})),
    MetricInfo("comet", "COMET", True, "neural"),
    MetricInfo("comet_qe", "COMET-QE", True, "neural"),
)}

#: The sacrebleu corpus metrics every ``regurg_mt`` task reports, in report order.
SACREBLEU_METRICS: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "sacrebleu")
#: The metrics the protocol scores by default (D, R and verdicts).
PROTOCOL_METRICS: tuple[str, ...] = ("bleu", "chrf", "ter")
#: name -> display label, in table order
METRIC_LABEL: dict[str, str] = {n: m.label for n, m in METRICS.items()}


def metric_info(name: str) -> MetricInfo:
    """The table row of ``name``; ``KeyError`` naming the known metrics otherwise."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}") from None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of ``name`` is better (False for TER only)."""
    return metric_info(name).higher_is_better


def metric_label(name: str) -> str:
    """Display label: ``"chrf"`` -> ``"chrF"``."""
    return metric_info(name).label


def metric_title(name: str) -> str:
    """A table's or a panel's heading: ``"chrF (higher is better)"``."""
    return f"{metric_label(name)} ({'higher' if higher_is_better(name) else 'lower'} is better)"


def corpus_metric(name: str):
    """A fresh sacrebleu metric object configured as lm-eval's aggregation ``name``."""
    import sacrebleu.metrics

    info = metric_info(name)
    if info.sacrebleu is None:
        raise KeyError(f"{name!r} is not a sacrebleu corpus metric; those are: {', '.join(SACREBLEU_METRICS)}")
    cls_name, kwargs = info.sacrebleu
    return getattr(sacrebleu.metrics, cls_name)(**kwargs)
