"""The committed task YAML is what the generator produces, and lm-eval accepts it."""

from __future__ import annotations

import json

import pytest
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
    assert cfg["metadata"]["version"] == 1.2
    assert cfg["class"] == "utils.RegurgMTTask"  # drops unconfigured COMET metrics before lm-eval sees them


def test_task_manager_resolves_group_to_every_direction():
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_config_dir()), include_defaults=False)
    for direction in EMBEDDED_DIRECTIONS:
        assert task_name(direction) in tm.all_subtasks
    assert "regurg_mt" in tm.all_groups


# -- the task class, in process (no model): what lm-eval will dump into the results JSON --------------

SACREBLEU = ["bleu", "chrf", "chrf++", "ter"]


@pytest.fixture
def no_comet_env(monkeypatch):
    from regurg_bench.metrics.comet import MODEL_ENV, QE_MODEL_ENV

    monkeypatch.delenv(MODEL_ENV, raising=False)
    monkeypatch.delenv(QE_MODEL_ENV, raising=False)


def _load_task(name: str, metadata: dict | None = None):
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_config_dir()), include_defaults=False, metadata=metadata or {})
    return tm.load([name])["tasks"][name]


def test_task_without_checkpoint_has_no_comet_anywhere(no_comet_env):
    from regurg_bench.evaluation.metric_hooks import RegurgMTTask

    task = _load_task("regurg_mt_en-es")
    assert isinstance(task, RegurgMTTask)
    assert task.higher_is_better() == {"bleu": True, "chrf": True, "chrf++": True, "ter": False}
    assert list(task.aggregation()) == SACREBLEU
    assert [m["metric"] for m in task.config.metric_list] == SACREBLEU
    # What lm-eval writes at configs.<task> (functions as source code): no COMET word at all.
    assert "comet" not in json.dumps(task.dump_config(), default=str).lower()
    doc = task.test_docs()[0]
    assert list(task.process_results(doc, ["Hola."])) == SACREBLEU


def test_task_with_checkpoint_keeps_only_the_configured_comet_metric(no_comet_env, monkeypatch):
    from regurg_bench.evaluation import metric_hooks as lm_eval_hooks

    seen = {}

    def fake_configure(**metadata):  # the real one validates the checkpoint in the COMET environment
        seen.update(metadata)
        return {"comet": metadata["comet_model"]}

    monkeypatch.setattr(lm_eval_hooks, "configure_comet_optional", fake_configure)
    task = _load_task("regurg_mt_en-es", {"comet_model": "/ckpt/wmt22-comet-da"})
    assert seen["comet_model"] == "/ckpt/wmt22-comet-da"
    assert task.higher_is_better() == {"bleu": True, "chrf": True, "chrf++": True, "ter": False,
                                       "comet": True}
    assert task.aggregation()["comet"] is lm_eval_hooks.comet_aggregation
    assert [m["metric"] for m in task.config.metric_list] == [*SACREBLEU, "comet"]
    doc = task.test_docs()[0]
    items = task.process_results(doc, ["Hola."])
    assert list(items) == [*SACREBLEU, "comet"]
    assert items["comet"] == ("/ckpt/wmt22-comet-da", doc["source"], "Hola.", doc["target"])
    assert items["bleu"] == [doc["target"], "Hola."]


def test_muse_variant_inherits_the_class_unchanged(no_comet_env):
    task = _load_task("regurg_mt_muse_en-es")
    assert list(task.higher_is_better()) == [*SACREBLEU, "muse_cos_src", "muse_cos_ref"]
    items = task.process_results(task.test_docs()[0], ["Hola."])
    assert set(items) == {*SACREBLEU, "muse_cos_src", "muse_cos_ref"}
