"""sacrebleu signatures of the corpus metrics our tasks report.

lm-eval's built-in ``bleu``/``chrf``/``chrf++``/``ter`` aggregations call ``sacrebleu.corpus_*`` with
sacrebleu's defaults (chrF++ = ``word_order=2``). The metric objects below are configured the same
way, so their signatures describe exactly what lm-eval computed; ``tests/test_lm_eval_tasks.py``
recomputes the scores with these objects from the logged samples and checks they are equal.
"""

from __future__ import annotations

from functools import cache

from sacrebleu.metrics import BLEU, CHRF, TER
from sacrebleu.metrics.base import Metric

#: metric name as reported by lm-eval -> (factory, higher_is_better)
CORPUS_METRICS: dict[str, tuple[type[Metric], dict, bool]] = {
    "bleu": (BLEU, {}, True),
    "chrf": (CHRF, {}, True),
    "chrf++": (CHRF, {"word_order": 2}, True),
    "ter": (TER, {}, False),
}


def corpus_metric(name: str) -> Metric:
    """A fresh sacrebleu metric object configured as lm-eval's aggregation ``name``."""
    cls, kwargs, _ = CORPUS_METRICS[name]
    return cls(**kwargs)


def higher_is_better(name: str) -> bool:
    return CORPUS_METRICS[name][2]


@cache
def sacrebleu_signatures() -> dict[str, str]:
    """``{"bleu": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", ...}``."""
    signatures = {}
    for name in CORPUS_METRICS:
        metric = corpus_metric(name)
        # sacrebleu only knows "nrefs" after scoring once; our tasks have exactly one reference.
        metric.corpus_score(["x"], [["x"]])
        signatures[name] = str(metric.get_signature())
    return signatures


def corpus_score(name: str, hypotheses: list[str], references: list[str]) -> float:
    """Corpus-level score of ``name`` with one reference per hypothesis."""
    return corpus_metric(name).corpus_score(hypotheses, [references]).score
