"""Generate the neural-metric task variants in ``task_configs/regurg_mt_comet/``.

Two families, each a per-direction task, a ``_custom`` task and a group (plain mean over directions):

* ``regurg_mt_comet`` — BLEU, chrF, chrF++, TER + ``comet`` and/or ``comet_qe`` (needs a configured
  checkpoint, see :mod:`regurg_bench.evaluation.metric_hooks`);
* ``regurg_mt_muse`` — BLEU, chrF, chrF++, TER + ``muse_cos_src`` and ``muse_cos_ref`` (offline).

Every variant ``include:``-s the shared ``regurg_mt`` template (same prompt, generation settings,
splits) and overrides only the dataset function, ``process_results``, ``metric_list`` and
``metadata``. Run ``python -m regurg_bench.evaluation.neural_task_yaml``; ``tests/test_metrics_comet.py``
fails when the committed files are out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

from regurg_bench._lm_eval_hook import task_config_dir
from regurg_bench.evaluation.generated_yaml import GENERATED_MARK, write_generated
from regurg_bench.evaluation.tasks import EMBEDDED_DIRECTIONS
from regurg_bench.metric_table import SACREBLEU_METRICS, higher_is_better

FOLDER = "regurg_mt_comet"
HEADER = f"{GENERATED_MARK} `python -m regurg_bench.evaluation.neural_task_yaml`; edit the generator, not this file.\n"
#: family -> (neural metric -> aggregation function in utils.py)
FAMILIES: dict[str, dict[str, str]] = {
    "regurg_mt_comet": {"comet": "comet_aggregation", "comet_qe": "comet_qe_aggregation"},
    "regurg_mt_muse": {"muse_cos_src": "muse_src_aggregation", "muse_cos_ref": "muse_ref_aggregation"},
}
_SUFFIX = {"regurg_mt_comet": "comet", "regurg_mt_muse": "muse"}
#: Task versions (see the changelog in task_configs/regurg_mt_comet/README.md). regurg_mt_comet 1.1: a
#: COMET metric without a configured checkpoint is left out of the results (it was listed in 1.0).
VERSIONS = {"regurg_mt_comet": "1.1", "regurg_mt_muse": "1.0"}


def _template(family: str) -> str:
    kind = _SUFFIX[family]
    metrics = "".join(f"  - metric: {m}\n    aggregation: {m}\n    higher_is_better: {str(higher_is_better(m)).lower()}\n"
                      for m in SACREBLEU_METRICS)
    metrics += "".join(f"  - metric: {m}\n    aggregation: !function utils.{agg}\n    higher_is_better: true\n"
                       for m, agg in FAMILIES[family].items())
    return (f"{HEADER}# Template of the {family}_* tasks: the shared regurg_mt template (prompt, generation,\n"
            f"# splits) with extra metrics. See README.md in this folder.\n"
            "include: ../regurg_mt/_regurg_mt_template.yaml\n"
            f"custom_dataset: !function utils.{kind}_embedded_dataset\n"
            f"process_results: !function utils.process_results_{kind}\n"
            f"metric_list:\n{metrics}"
            f"metadata:\n  version: {VERSIONS[family]}\n  sacrebleu_signatures: !function utils.SACREBLEU_SIGNATURES\n"
            f"  neural_metrics: !function utils.{kind.upper()}_METRICS\n")


def render_all() -> dict[str, str]:
    files: dict[str, str] = {}
    for family, metrics in FAMILIES.items():
        kind = _SUFFIX[family]
        tmpl = f"_{family}_template.yaml"
        files[tmpl] = _template(family)
        for d in EMBEDDED_DIRECTIONS:
            files[f"{family}_{d}.yaml"] = (f"{HEADER}include: {tmpl}\ntask: {family}_{d}\n"
                                           f"dataset_kwargs:\n  regurg_direction: {d}\n")
        files[f"{family}_custom.yaml"] = (
            f"{HEADER}# A user's own test set: --metadata "
            """'{"corpus": "PATH_OR_SPEC", "src_lang": "de", "tgt_lang": "en"}'\n"""
            f"include: {tmpl}\ntask: {family}_custom\ncustom_dataset: !function utils.{kind}_custom_dataset\n")
        subtasks = "".join(f"  - {family}_{d}\n" for d in EMBEDDED_DIRECTIONS)
        aggs = "".join(f"  - metric: {m}\n    aggregation: mean\n    weight_by_size: false\n"
                       for m in (*SACREBLEU_METRICS, *metrics))
        files[f"{family}.yaml"] = (f"{HEADER}group: {family}\ntask:\n{subtasks}aggregate_metric_list:\n{aggs}"
                                   f"metadata:\n  version: {VERSIONS[family]}\n")
    return files


def write_all(folder: Path | None = None) -> list[Path]:
    """Write every generated file, and remove generated files the generator no longer writes."""
    return write_generated(folder or task_config_dir() / FOLDER, render_all())


if __name__ == "__main__":
    for p in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(p)
