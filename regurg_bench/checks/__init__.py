"""``regurg-bench check``: a built split's statistics compared with a committed baseline.

- :mod:`.stats`: the statistics of a split folder (manifest, fingerprints, generator mix, duplicates,
  test-set leakage, lengths, diagnostics);
- :mod:`.baseline`: the baseline file (value and tolerance per statistic);
- :mod:`.compare`: the diff, one :class:`~.compare.CheckResult` per statistic;
- :mod:`.report`: rich diff table, JSON and JUnit XML;
- :mod:`.gate`: the gate itself (which split, build, compare, accept): :func:`~.gate.run_gate`;
- :mod:`.commands`: the ``check`` command (``register(app)``), a thin CLI over :mod:`.gate`.

The CI split and its baseline live in ``regurg_bench/checks/baselines/``.
"""

from regurg_bench.checks.baseline import Baseline, BaselineError, Tolerance, load_baseline, write_baseline
from regurg_bench.checks.compare import CheckResult, compare
from regurg_bench.checks.stats import collect_stats

__all__ = ["Baseline", "BaselineError", "CheckResult", "Tolerance", "collect_stats", "compare", "load_baseline",
           "write_baseline"]
