"""Generate the per-direction task YAML and the group YAML from one table (lm-eval's convention).

Run ``python -m regurg_bench.evaluation.task_yaml`` after changing :data:`EMBEDDED_DIRECTIONS`, the
group or the corpus; ``tests/test_task_configs.py`` fails when the committed files are out of date.
``test_set_fingerprints.json`` publishes the size and content hash of every test set, so a changed
test set can never pass silently under an unchanged task version.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from regurg_bench._lm_eval_hook import task_config_dir
from regurg_bench.evaluation.generated_yaml import GENERATED_MARK, write_generated
from regurg_bench.evaluation.tasks import (
    CUSTOM_TASK_NAME,
    EMBEDDED_DIRECTIONS,
    GROUP_NAME,
    task_name,
    test_set_fingerprints,
)
from regurg_bench.metric_table import METRICS, SACREBLEU_METRICS

HEADER = f"{GENERATED_MARK} `python -m regurg_bench.evaluation.task_yaml`; edit the generator, not this file.\n"
#: Group-aggregated too, but present only when a COMET checkpoint is configured (lm-eval auto-discovers
#: the filters of a group metric, so an absent one is skipped silently).
OPTIONAL_METRICS = tuple(n for n, m in METRICS.items() if m.family == "neural")
FINGERPRINTS_FILE = "test_set_fingerprints.json"


def render_all() -> dict[str, str]:
    """File name -> YAML text of every generated file."""
    files: dict[str, str] = {}
    for direction in EMBEDDED_DIRECTIONS:
        files[f"{task_name(direction)}.yaml"] = (
            f"{HEADER}include: _regurg_mt_template.yaml\n"
            f"task: {task_name(direction)}\n"
            f"dataset_kwargs:\n  regurg_direction: {direction}\n"
        )
    subtasks = "".join(f"  - {task_name(d)}\n" for d in EMBEDDED_DIRECTIONS)
    # Plain (unweighted) mean over directions; TER stays lower-is-better at group level too.
    aggregates = "".join(
        f"  - metric: {m}\n    aggregation: mean\n    weight_by_size: false\n" for m in (*SACREBLEU_METRICS, *OPTIONAL_METRICS))
    files[f"{GROUP_NAME}.yaml"] = (
        f"{HEADER}group: {GROUP_NAME}\ntask:\n{subtasks}aggregate_metric_list:\n{aggregates}"
        "metadata:\n  version: 1.3\n")
    files[f"{CUSTOM_TASK_NAME}.yaml"] = (
        f"{HEADER}# A user's own test set: pass --metadata "
        """'{"corpus": "PATH_OR_SPEC", "src_lang": "de", "tgt_lang": "en"}'\n"""
        f"include: _regurg_mt_template.yaml\ntask: {CUSTOM_TASK_NAME}\n"
        "custom_dataset: !function utils.custom_dataset\n"
    )
    files[FINGERPRINTS_FILE] = json.dumps(test_set_fingerprints(), indent=2) + "\n"
    return files


#: Files of the ``regurg_mt`` folder written by hand (every other YAML there is generated).
HANDWRITTEN = ("_regurg_mt_template.yaml",)


def write_all(folder: Path | None = None) -> list[Path]:
    """Write every generated file, and remove generated files the generator no longer writes."""
    folder = folder or task_config_dir() / GROUP_NAME
    return write_generated(folder, render_all(), HANDWRITTEN)


if __name__ == "__main__":
    from regurg_bench.evaluation import neural_task_yaml  # the COMET / mUSE task families

    for path in write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else None):
        print(path)
    for path in neural_task_yaml.write_all():
        print(path)
