"""Degradation and recovery with paired-bootstrap confidence intervals (pure; no model, no torch).

Entry points: :func:`paired_bootstrap` (corpus scores of several conditions on jointly resampled
test sentences, optionally also resampling seeds), :func:`degradation`, :func:`recovery` and
:func:`difference` (a paired score difference in metric points).
"""

from regurg_bench.scoring.bootstrap import BootstrapScores, paired_bootstrap
from regurg_bench.scoring.effects import Effect, degradation, difference, recovery

__all__ = ["BootstrapScores", "Effect", "degradation", "difference", "paired_bootstrap", "recovery"]
