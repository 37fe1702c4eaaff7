"""Neural MT metrics: COMET (isolated environment + worker), mUSE cosine (offline), a score cache.

* :mod:`.comet` — ``CometMetric`` (reference-based ``comet`` / reference-free ``comet_qe``), driven in
  the COMET environment created by ``python -m regurg_bench.metrics.comet_env``;
* :mod:`.similarity` — ``MuseCosine``: mUSE cosine, offline, never called COMET;
* :mod:`.quality` — the per-instance quality signal for mitigation M1;
* :mod:`.cache` — the content-addressed score cache; :mod:`.report` — scores for logged samples;
* :mod:`.lm_eval_hooks` / :mod:`.task_yaml` — the ``regurg_mt_comet`` and ``regurg_mt_muse`` tasks.

Importing this package imports neither torch nor COMET.
"""

from regurg_bench.metrics.base import MetricError, SegmentMetric
from regurg_bench.metrics.cache import ScoreCache

__all__ = ["MetricError", "ScoreCache", "SegmentMetric"]
