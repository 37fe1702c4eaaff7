"""Compare current statistics with a baseline: one :class:`CheckResult` per statistic."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from regurg_bench.checks.baseline import Baseline, Tolerance

#: pass: within tolerance; fail: outside it, or in the baseline but gone now (``missing``); warn: a
#: content hash that differs under ``--allow-content-change``; new: not in the baseline (never fails:
#: the statistics that name the conditions and generators catch a new split or generator).
PASS, FAIL, WARN, NEW, MISSING = "pass", "fail", "warn", "new", "missing"
FAILING = (FAIL, MISSING)


@dataclass
class CheckResult:
    name: str
    baseline: Any
    current: Any
    tolerance: str
    status: str
    message: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILING

    @property
    def group(self) -> str:
        """What the statistic belongs to: a condition name, ``generator.<g>``, or ``split``."""
        head, _, rest = self.name.partition(".")
        if not rest:
            return "split"
        if head == "generator":
            return "generator." + rest.split(".", 1)[0]
        return head

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _delta(baseline: Any, current: Any) -> str:
    if isinstance(baseline, bool) or isinstance(current, bool):
        return ""
    if isinstance(baseline, int | float) and isinstance(current, int | float):
        diff = current - baseline
        rel = f" ({diff / baseline * 100:+.1f}%)" if baseline else ""
        return f"{diff:+.6g}{rel}"
    return ""


def compare(current: dict[str, Any], baseline: Baseline, *, allow_content_change: bool = False) -> list[CheckResult]:
    """Every baseline statistic checked against ``current``, then the statistics the baseline lacks."""
    results: list[CheckResult] = []
    for name, expected in baseline.stats.items():
        tol = str(expected.tolerance)
        if name not in current:
            results.append(CheckResult(name, expected.value, None, tol, MISSING,
                                       "in the baseline but not computed for this split"))
            continue
        value = current[name]
        if expected.tolerance.allows(expected.value, value):
            results.append(CheckResult(name, expected.value, value, tol, PASS))
            continue
        delta = _delta(expected.value, value)
        message = f"{name}: baseline {expected.value!r}, now {value!r}" + (f", change {delta}" if delta else "") + \
            f"; tolerance {tol}"
        if expected.content and allow_content_change:
            results.append(CheckResult(name, expected.value, value, tol, WARN,
                                       message + " (content hash; allowed by --allow-content-change)"))
        else:
            results.append(CheckResult(name, expected.value, value, tol, FAIL, message))
    for name in current.keys() - baseline.stats.keys():
        results.append(CheckResult(name, None, current[name], str(Tolerance()), NEW,
                                   "not in the baseline (accept with --update-baseline)"))
    order = {name: i for i, name in enumerate(current)}
    results.sort(key=lambda r: (order.get(r.name, len(order)), r.name))
    return results


def summary(results: list[CheckResult]) -> dict[str, int]:
    counts = {s: 0 for s in (PASS, FAIL, MISSING, WARN, NEW)}
    for r in results:
        counts[r.status] += 1
    return counts
