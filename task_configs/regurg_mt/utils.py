"""lm-eval hooks of the regurg_mt tasks. Thin on purpose: the logic lives in regurg_bench."""

from regurg_bench.evaluation.corpus_aggregations import bleu_corpus, chrf_corpus, chrfpp_corpus, ter_corpus
from regurg_bench.evaluation.metric_hooks import (
    RegurgMTTask,
    comet_aggregation,
    comet_qe_aggregation,
    process_results,
)
from regurg_bench.evaluation.signatures import sacrebleu_signatures
from regurg_bench.evaluation.tasks import custom_dataset, doc_to_text, embedded_dataset

SACREBLEU_SIGNATURES = sacrebleu_signatures()

__all__ = ["SACREBLEU_SIGNATURES", "RegurgMTTask", "bleu_corpus", "chrf_corpus", "chrfpp_corpus", "ter_corpus", "comet_aggregation", "comet_qe_aggregation", "custom_dataset",
           "doc_to_text", "embedded_dataset", "process_results"]
