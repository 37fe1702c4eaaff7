"""Neural MT metrics: COMET (isolated environment + worker), mUSE cosine (offline), a score cache.

* :mod:`.comet` — ``CometMetric`` (reference-based ``comet`` / reference-free ``comet_qe``), driven in
  the COMET environment created by ``python -m regurg_bench.metrics.comet_env``;
* :mod:`.similarity` — ``MuseCosine``: mUSE cosine, offline, never called COMET;
* :mod:`.quality` — the per-instance quality signal for mitigation M1;
* :mod:`.cache` — the content-addressed score cache; :mod:`.report` — scores for logged samples;
* the ``regurg_mt_comet`` and ``regurg_mt_muse`` lm-eval tasks that use them live in the evaluation
  layer (:mod:`regurg_bench.evaluation.metric_hooks`, :mod:`regurg_bench.evaluation.neural_task_yaml`):
  evaluation imports metrics, never the other way round.

Importing this package imports neither torch nor COMET.
"""

from regurg_bench.metrics.base import MetricError, SegmentMetric
from regurg_bench.metrics.cache import ScoreCache

__all__ = ["MetricError", "ScoreCache", "SegmentMetric"]
