"""lm-eval hooks of the neural-metric task variants ``regurg_mt_comet*`` and ``regurg_mt_muse*``, and
the task class of ``regurg_mt`` (optional COMET).

lm-eval's default metric pipeline hands a metric only (reference, prediction); COMET also needs the
source. These variants therefore use their own ``process_results`` (:func:`process_results_comet`,
:func:`process_results_muse`), which return, per document:

* for ``bleu``/``chrf``/``chrf++``/``ter`` exactly the item lm-eval's built-in pipeline produces
  (``[reference, prediction]``), aggregated by the same built-in corpus aggregations, so these four
  numbers are identical to those of ``regurg_mt`` on the same outputs;
* for ``comet`` / ``comet_qe`` an item ``(checkpoint, source, hypothesis, reference)``; the
  aggregation (:func:`comet_aggregation`) scores all items of a task in one batched, cached call to
  the COMET worker and returns the system score (mean of segment scores). lm-eval reports its stderr
  as "N/A" (no bootstrap for custom aggregations);
* for ``muse_cos_src`` / ``muse_cos_ref`` an item ``(source, hypothesis)`` / ``(hypothesis,
  reference)``, aggregated likewise.

Configuration (COMET variant): ``--metadata '{"comet_model": PATH_OR_ID}'`` (reference-based) and/or
``"comet_qe_model"`` (reference-free), else the environment variables ``REGURG_BENCH_COMET_MODEL`` /
``REGURG_BENCH_COMET_QE_MODEL``. lm-eval calls the dataset function with the metadata before any
document is scored; we validate the checkpoint and the COMET environment there, so a bad path fails
before generation. A COMET key is returned only for a configured checkpoint; requesting a
``regurg_mt_comet`` task with none configured is an error (never a NaN, never a silent 0).

The plain ``regurg_mt`` tasks (template version 1.2 and later) use the same configuration, optionally, through
their task class :class:`RegurgMTTask` (``class: !function utils.RegurgMTTask`` in the template).
lm-eval copies a task's declared ``metric_list`` into the results JSON (``higher_is_better``,
``configs``) whether or not a metric is ever computed, and the source code of its ``process_results``
and dataset function into ``configs``. So the class resolves the COMET configuration *before*
lm-eval builds the task and hands lm-eval a config that describes exactly the task that runs: the
COMET metrics of ``metric_list`` that have no configured checkpoint are removed, the dataset function
and ``process_results`` are COMET-free (:func:`process_results` returns the four sacrebleu items) and
the class adds the items of the configured COMET metrics. Without a checkpoint the results JSON and
the logged samples of a ``regurg_mt`` task therefore mention no COMET at all; with one, ``comet`` /
``comet_qe`` are reported as by the ``regurg_mt_comet`` tasks. The task variants that ``include:``
the template (``regurg_mt_comet*``, ``regurg_mt_muse*``) inherit the class; it changes nothing for
tasks that declare no COMET metric.
"""

from __future__ import annotations

import logging
import math
import os
from collections import defaultdict
from typing import Any

from lm_eval.api.task import ConfigurableTask

from regurg_bench.metric_table import METRICS, SACREBLEU_METRICS
from regurg_bench.metrics.base import MetricError

log = logging.getLogger(__name__)

#: The COMET metric names, in the order they are declared in ``metric_list``.
COMET_METRICS: tuple[str, ...] = tuple(n for n, m in METRICS.items() if m.family == "neural")
#: What the current process's COMET tasks score with: {"comet": model, "comet_qe": model}.
_COMET_CONFIG: dict[str, str] = {}
_COMET_BATCH_SIZE = 16


def configure_comet(comet_model: str | None = None, comet_qe_model: str | None = None,
                    comet_batch_size: int | None = None, **_: Any) -> dict[str, str]:
    """Resolve and validate the COMET checkpoints (metadata first, then environment variables)."""
    from regurg_bench.metrics.comet import MODEL_ENV, QE_MODEL_ENV, CometMetric
    from regurg_bench.metrics.comet_env import comet_python

    global _COMET_BATCH_SIZE
    wanted = {"comet": comet_model or os.environ.get(MODEL_ENV), "comet_qe": comet_qe_model or
              os.environ.get(QE_MODEL_ENV)}
    wanted = {k: str(v) for k, v in wanted.items() if v}
    if not wanted:
        raise MetricError(
            "the regurg_mt_comet tasks need a COMET checkpoint: pass --metadata "
            """'{"comet_model": "/path/to/wmt22-comet-da"}' (and/or "comet_qe_model" for a """
            f"cometkiwi-class checkpoint), or set {MODEL_ENV} / {QE_MODEL_ENV}. Use the regurg_mt "
            "tasks for BLEU/chrF/TER without COMET.")
    comet_python()  # raises with the setup command when the COMET environment is missing
    for key, model in wanted.items():
        metric = CometMetric(model)
        if metric.name != key:
            raise MetricError(f"{key}_model {model!r} is a {metric.title} checkpoint "
                              f"({metric.hparams.get('class_identifier')}); pass it as "
                              f"{'comet_qe_model' if metric.referenceless else 'comet_model'}")
        if metric.test_only:
            log.warning("COMET checkpoint %s is TEST-ONLY (untrained head): its scores mean nothing", model)
    if comet_batch_size:
        _COMET_BATCH_SIZE = int(comet_batch_size)
    _COMET_CONFIG.clear()
    _COMET_CONFIG.update(wanted)
    return dict(wanted)


def configure_comet_optional(comet_model: str | None = None, comet_qe_model: str | None = None,
                             **metadata: Any) -> dict[str, str]:
    """:func:`configure_comet` when a checkpoint is configured (metadata or environment), else
    clear the configuration (the plain ``regurg_mt`` tasks then score no COMET) and return ``{}``."""
    from regurg_bench.metrics.comet import MODEL_ENV, QE_MODEL_ENV

    if not (comet_model or comet_qe_model or os.environ.get(MODEL_ENV) or os.environ.get(QE_MODEL_ENV)):
        _COMET_CONFIG.clear()
        return {}
    return configure_comet(comet_model=comet_model, comet_qe_model=comet_qe_model, **metadata)


# -- the task class of regurg_mt -------------------------------------------------------------------

class RegurgMTTask(ConfigurableTask):
    """lm-eval task whose COMET metrics exist only when a checkpoint is configured (module docstring).

    Built by lm-eval's task factory as ``RegurgMTTask(config=cfg)``, ``cfg`` being the task's YAML
    (includes and ``!function`` resolved) with the run's ``--metadata`` / ``--model_args`` merged into
    ``cfg["metadata"]``.
    """

    def __init__(self, config: dict | None = None, **kwargs: Any) -> None:
        config = {k: v for k, v in (config or {}).items() if k != "class"}  # not a TaskConfig field
        declared = [m for m in config.get("metric_list") or [] if m.get("metric") in COMET_METRICS]
        # Checkpoints validated here, before any document is generated; {} when none is configured.
        self._comet_models = configure_comet_optional(**(config.get("metadata") or {})) if declared else {}
        if declared:
            unconfigured = set(COMET_METRICS) - set(self._comet_models)
            config["metric_list"] = [m for m in config["metric_list"] if m.get("metric") not in unconfigured]
        super().__init__(config=config, **kwargs)

    def process_results(self, doc: dict, results: list) -> dict:
        out = super().process_results(doc, results)
        for key, model in self._comet_models.items():  # (a variant's own hook may have added them)
            out.setdefault(key, (model, doc["source"], results[0], doc["target"]))
        return out


# -- datasets of the regurg_mt_comet tasks (COMET required) ------------------------------------------

def comet_embedded_dataset(regurg_direction: str, **metadata: Any):
    from regurg_bench.evaluation.tasks import embedded_dataset

    configure_comet(**metadata)
    return embedded_dataset(regurg_direction)


def comet_custom_dataset(**metadata: Any):
    from regurg_bench.evaluation.tasks import custom_dataset

    configure_comet(**metadata)
    return custom_dataset(**metadata)


# -- process_results ----------------------------------------------------------------------------------

def _sacrebleu_items(doc: dict, results: list) -> tuple[str, dict]:
    # Exactly what lm-eval's built-in pipeline builds for bleu/chrf/chrf++/ter: gold = doc_to_target
    # (our field "target"), result = the filtered response; item = [gold, result].
    hyp = results[0]
    gold = doc["target"]
    gold = type(hyp)(gold) if type(gold) is not type(hyp) else gold
    return hyp, {m: [gold, hyp] for m in SACREBLEU_METRICS}


def process_results(doc: dict, results: list) -> dict:
    """``process_results`` of the ``regurg_mt`` tasks: the four sacrebleu items, exactly as lm-eval's
    built-in pipeline builds them (their task class adds the items of any configured extra metric)."""
    return _sacrebleu_items(doc, results)[1]


def process_results_comet(doc: dict, results: list) -> dict:
    hyp, out = _sacrebleu_items(doc, results)
    if not _COMET_CONFIG:
        raise MetricError("COMET is not configured (the task's dataset function did not run?)")
    for key, model in _COMET_CONFIG.items():
        out[key] = (model, doc["source"], hyp, doc["target"])
    return out


def process_results_muse(doc: dict, results: list) -> dict:
    hyp, out = _sacrebleu_items(doc, results)
    out["muse_cos_src"] = (doc["source"], hyp)
    out["muse_cos_ref"] = (hyp, doc["target"])
    return out


# -- aggregations -------------------------------------------------------------------------------------

def _checked(value: float, name: str) -> float:
    if not math.isfinite(value):  # never let a NaN reach the results JSON
        raise MetricError(f"{name}: non-finite system score {value}")
    return float(value)


def _comet_system(items: list) -> float:
    from regurg_bench.metrics.comet import CometMetric

    by_model: dict[str, list] = defaultdict(list)
    for model, src, hyp, ref in items:
        by_model[model].append((src, hyp, ref))
    if len(by_model) != 1:
        raise MetricError(f"one task scored with several COMET checkpoints: {sorted(by_model)}")
    (model, rows), = by_model.items()
    metric = CometMetric(model, batch_size=_COMET_BATCH_SIZE)
    src, hyp, ref = (list(c) for c in zip(*rows, strict=True))
    return _checked(metric.corpus_score(hyp, src, ref), metric.name)


def comet_aggregation(items: list) -> float:
    return _comet_system(items)


def comet_qe_aggregation(items: list) -> float:
    return _comet_system(items)


def muse_src_aggregation(items: list) -> float:
    from regurg_bench.metrics.similarity import MuseCosine

    src, hyp = (list(c) for c in zip(*items, strict=True))
    return _checked(MuseCosine("source").corpus_score(hyp, sources=src), "muse_cos_src")


def muse_ref_aggregation(items: list) -> float:
    from regurg_bench.metrics.similarity import MuseCosine

    hyp, ref = (list(c) for c in zip(*items, strict=True))
    return _checked(MuseCosine("reference").corpus_score(hyp, references=ref), "muse_cos_ref")
