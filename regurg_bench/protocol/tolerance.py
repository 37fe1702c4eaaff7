"""When two scores of one config are "the same within noise": the one tolerance of ``compare`` and ``verify``.

Two runs of one config on two machines do not give the same bits (CPU kernels round differently), so a
re-run student or a re-run condition scores a little differently. How much is noise? The run measures
its own noise: the spread of a metric over seeds. A student trained on another machine is at most a
fresh draw of that training noise (the issue's measurements: kernel settings changed the bits of the
weights but far fewer outputs than a seed change does), so the difference of two scores that are means
of ``n_a`` and ``n_b`` seeds has a standard deviation of at most ``s * sqrt(1/n_a + 1/n_b)``
(``sqrt(2) * s`` for one student against its re-run).

    tolerance = t_{df}(1 - alpha / (2 m)) * s * sqrt(1/n_a + 1/n_b),   alpha = 0.05

``s``: the seed standard deviation (ddof=1) of the metric in the reference run (the recorded run for
``verify``, RUN_A for ``compare``: a broken re-run must not widen its own tolerance), pooled over the
conditions that have at least two seeds whose scores differ, ``s^2 = sum_c sum_i (x_ci - mean_c)^2 / df`` with
``df = sum_c (n_c - 1)``. Conditions whose seeds all score the same are left out: their seeds changed
nothing (a fixed curriculum over a shared base), which says nothing about how much a seed moves a
score, and counting them would shrink ``s``. ``m``: the number of score comparisons the check makes
(students x tasks x metrics for ``verify``, conditions x tasks x metrics for ``compare``). The
quantile of Student's t with ``df`` degrees of freedom, not the normal one, because ``s`` is itself
estimated from few seeds; dividing ``alpha`` by ``m`` (Bonferroni) bounds the chance that an honest
re-run fails *anywhere* in the check. So under the model (normal scores, machine noise no larger than
seed noise) the false-failure rate of a whole ``verify`` or ``compare`` is at most 5 %, whatever the
number of students, metrics or seeds; correlated metrics (BLEU, chrF and TER of the same outputs) make
it smaller. With ``verify --rerun 1`` on one task and three metrics and a run with ``df = 16``,
the multiplier is t_16(1 - 0.05/6) = 2.67, i.e. a tolerance of 3.8 seed standard deviations.

A run with no condition whose seeds differ (one seed) has no tolerance (``None``): only byte-identical
outputs can then count as reproduced.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regurg_bench.results import RunResults

#: The family-wise false-failure rate the tolerance allows an honest re-run.
ALPHA = 0.05

DEFINITION = ("|difference| <= t_df(1 - 0.05/(2m)) * s_seed * sqrt(1/n_a + 1/n_b): s_seed the seed standard "
              "deviation (ddof=1) of the metric in the reference run (verify: the recorded run; compare: RUN_A), "
              "pooled over its conditions whose seeds differ (df = sum of n_c - 1); n_a, n_b the seeds averaged "
              "on each side; m the score comparisons of the check (Bonferroni): at most 5% of honest re-runs "
              "fail anywhere")


@dataclass(frozen=True)
class SeedSpread:
    """The pooled seed standard deviation of one metric (None without a condition whose seeds differ)."""

    sd: float | None
    df: int
    conditions: int


@dataclass(frozen=True)
class Tolerance:
    """The largest difference counted as noise, with what it was computed from."""

    value: float | None
    multiplier: float | None  # the t quantile
    sd: float | None
    df: int
    comparisons: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def seed_spread(per_seed: Iterable[Sequence[float]]) -> SeedSpread:
    """Pool the seed variance of several conditions (each a list of per-seed scores of one metric)."""
    ss, df, used = 0.0, 0, 0
    for scores in per_seed:
        values = [float(x) for x in scores]
        if len(values) < 2 or max(values) == min(values):
            continue  # one seed, or seeds that changed nothing: no information about seed noise
        mean = sum(values) / len(values)
        ss += sum((x - mean) ** 2 for x in values)
        df += len(values) - 1
        used += 1
    return SeedSpread(math.sqrt(ss / df) if df else None, df, used)


def run_seed_spread(runs: Iterable[RunResults], task: str, metric: str) -> SeedSpread:
    """The pooled seed spread of ``metric`` on ``task`` over every condition of one or more runs' results."""
    return seed_spread([per[metric].per_seed for results in runs for per in results.scores.get(task, {}).values()
                        if metric in per])


def tolerance(spread: SeedSpread, comparisons: int, n_a: int = 1, n_b: int = 1, alpha: float = ALPHA) -> Tolerance:
    """The tolerance for the difference of two scores, means of ``n_a`` and ``n_b`` seeds, in a check of
    ``comparisons`` score comparisons (see the module docstring)."""
    if spread.sd is None:
        return Tolerance(None, None, None, spread.df, comparisons)
    from scipy.stats import t

    q = float(t.ppf(1.0 - alpha / (2 * max(1, comparisons)), spread.df))
    return Tolerance(q * spread.sd * math.sqrt(1.0 / n_a + 1.0 / n_b), q, spread.sd, spread.df, comparisons)


def within(difference: float, tol: Tolerance) -> bool | None:
    """Whether ``difference`` is noise (None when the run has no tolerance)."""
    return None if tol.value is None else abs(difference) <= tol.value
