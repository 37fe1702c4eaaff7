"""Degradation and recovery with paired-bootstrap confidence intervals (pure; no model, no torch).

Entry points: :func:`paired_bootstrap` (corpus scores of several conditions on jointly resampled
test sentences, optionally also resampling seeds), :func:`degradation` and :func:`recovery`.
"""

from regurg_bench.scoring.bootstrap import BootstrapScores, paired_bootstrap
from regurg_bench.scoring.effects import Effect, degradation, recovery

__all__ = ["BootstrapScores", "Effect", "degradation", "paired_bootstrap", "recovery"]
