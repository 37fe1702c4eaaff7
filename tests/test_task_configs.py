"""The committed task YAML is what the generator produces, and lm-eval accepts it."""

from __future__ import annotations

import yaml

from regurg_bench._lm_eval_hook import task_config_dir
from regurg_bench.evaluation.task_yaml import render_all
from regurg_bench.evaluation.tasks import EMBEDDED_DIRECTIONS, task_name


def test_generated_yaml_is_up_to_date():
    folder = task_config_dir() / "regurg_mt"
    for name, text in render_all().items():
        path = folder / name
        assert path.exists(), f"{path} missing: run python -m regurg_bench.evaluation.task_yaml"
        assert path.read_text(encoding="utf-8") == text, \
            f"{path} is stale: run python -m regurg_bench.evaluation.task_yaml"


def _plain_load(path):
    loader = type("L", (yaml.SafeLoader,), {})
    loader.add_constructor("!function", lambda ld, node: ld.construct_scalar(node))
    return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)


def test_template_declares_metrics_with_explicit_direction_and_version():
    cfg = _plain_load(task_config_dir() / "regurg_mt" / "_regurg_mt_template.yaml")
    directions = {m["metric"]: m["higher_is_better"] for m in cfg["metric_list"]}
    assert directions == {"bleu": True, "chrf": True, "chrf++": True, "ter": False, "comet": True, "comet_qe": True}
    assert cfg["generation_kwargs"]["until"] == ["\n"]
    assert cfg["generation_kwargs"]["do_sample"] is False
    assert isinstance(cfg["metadata"]["version"], float)


def test_task_manager_resolves_group_to_every_direction():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_config_dir()), include_defaults=False)
    for direction in EMBEDDED_DIRECTIONS:
        assert task_name(direction) in tm.all_subtasks
    assert "regurg_mt" in tm.all_groups
