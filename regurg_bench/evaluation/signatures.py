"""sacrebleu signatures of the corpus metrics our tasks report.

lm-eval's built-in ``bleu``/``chrf``/``chrf++``/``ter`` aggregations call ``sacrebleu.corpus_*`` with
sacrebleu's defaults (chrF++ = ``word_order=2``). The metric objects below are configured the same
way (:mod:`regurg_bench.metric_table`), so their signatures describe exactly what lm-eval computed; ``tests/test_lm_eval_tasks.py``
recomputes the scores with these objects from the logged samples and checks they are equal.
"""

from __future__ import annotations

from functools import cache

from regurg_bench.metric_table import SACREBLEU_METRICS, corpus_metric


@cache
def sacrebleu_signatures() -> dict[str, str]:
    """``{"bleu": "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0", ...}``."""
    signatures = {}
    for name in SACREBLEU_METRICS:
        metric = corpus_metric(name)
        # sacrebleu only knows "nrefs" after scoring once; our tasks have exactly one reference.
        metric.corpus_score(["x"], [["x"]])
        signatures[name] = str(metric.get_signature())
    return signatures


def corpus_score(name: str, hypotheses: list[str], references: list[str]) -> float:
    """Corpus-level score of ``name`` with one reference per hypothesis."""
    return corpus_metric(name).corpus_score(hypotheses, [references]).score
