"""Outputs of ``regurg-bench check``: a rich diff table, JSON, and JUnit XML for CI systems."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.checks.compare import FAILING, PASS, CheckResult, summary

_STYLE = {"fail": "bold red", "missing": "bold red", "warn": "yellow", "new": "cyan", "pass": "green"}


def _short(value: Any, width: int = 24) -> str:
    if value is None:
        return "—"
    if isinstance(value, str) and value.startswith("sha256:"):
        return value[:19] + "…"  # enough to tell hashes apart; the JSON has them whole
    if isinstance(value, float):
        text = f"{value:.4g}" if abs(value) < 1e6 else f"{value:.6g}"
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _delta(r: CheckResult) -> str:
    b, c = r.baseline, r.current
    if isinstance(b, bool) or isinstance(c, bool) or not isinstance(b, int | float) or not isinstance(c, int | float):
        return "changed" if r.status != PASS and b is not None and c is not None else ""
    diff = c - b
    if diff == 0:
        return "0"
    rel = f" ({diff / b * 100:+.1f}%)" if b else ""
    return f"{diff:+.4g}{rel}"


def diff_table(results: list[CheckResult], *, title: str, show_all: bool = False):
    """Rows for every statistic that is not a plain pass (all of them with ``show_all``)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col, justify in (("status", "left"), ("statistic", "left"), ("baseline", "right"), ("current", "right"),
                         ("change", "right"), ("tolerance", "left")):
        table.add_column(col, justify=justify, no_wrap=True, min_width=36 if col == "statistic" else None,
                         overflow="fold")
    for r in results:
        if r.status == PASS and not show_all:
            continue
        style = _STYLE[r.status]
        table.add_row(f"[{style}]{r.status.upper()}[/{style}]", r.name, _short(r.baseline), _short(r.current),
                      _delta(r), r.tolerance)
    return table


def print_report(results: list[CheckResult], *, split: str, baseline: str, console=None, show_all: bool = False,
                 notes: list[str] | None = None) -> None:
    from rich.console import Console

    console = console or Console()
    counts = summary(results)
    failed = counts["fail"] + counts["missing"]
    shown = [r for r in results if show_all or r.status != PASS]
    if shown:
        console.print(diff_table(results, title=f"regurg-bench check: {split} vs {baseline}", show_all=show_all))
    for note in notes or []:
        console.print(f"[yellow]note:[/yellow] {note}")
    verdict = "[bold red]FAILED[/bold red]" if failed else "[bold green]PASSED[/bold green]"
    console.print(f"{verdict}: {counts['pass']} passed, {counts['fail']} failed, {counts['missing']} missing, "
                  f"{counts['warn']} warnings, {counts['new']} new (of {len(results)} statistics)")
    if failed:
        console.print("If the change is intended, accept it with [bold]--update-baseline[/bold] and commit the "
                      "baseline file.")


def to_json(results: list[CheckResult], *, split: str, baseline: str, notes: list[str] | None = None) -> dict[str, Any]:
    counts = summary(results)
    return {"ok": counts["fail"] + counts["missing"] == 0, "split": split, "baseline": baseline,
            "summary": counts, "notes": notes or [], "results": [r.to_dict() for r in results]}


def write_json(results: list[CheckResult], path: str | Path, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(json.dumps(to_json(results, **kw), indent=2, ensure_ascii=False) + "\n")
    return path


def junit_xml(results: list[CheckResult], *, split: str, seconds: float = 0.0) -> ET.ElementTree:
    """One ``<testcase>`` per statistic (classname ``regurg_bench.check.<group>``); failing statistics
    get a ``<failure>`` with the diff as its message, warnings and new statistics a ``<system-out>``."""
    counts = summary(results)
    suites = ET.Element("testsuites", name="regurg-bench check")
    suite = ET.SubElement(suites, "testsuite", name=f"regurg-bench check {split}", tests=str(len(results)),
                          failures=str(counts["fail"] + counts["missing"]), errors="0", skipped="0",
                          time=f"{seconds:.3f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"regurg_bench.check.{r.group}", name=r.name, time="0")
        if r.status in FAILING:
            failure = ET.SubElement(case, "failure", message=r.message, type=r.status)
            failure.text = (f"baseline: {r.baseline!r}\ncurrent: {r.current!r}\ntolerance: {r.tolerance}\n")
        elif r.status != PASS:
            ET.SubElement(case, "system-out").text = f"{r.status}: {r.message}"
    suites.set("tests", str(len(results)))
    suites.set("failures", str(counts["fail"] + counts["missing"]))
    ET.indent(suites)
    return ET.ElementTree(suites)


def write_junit(results: list[CheckResult], path: str | Path, **kw) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree = junit_xml(results, **kw)
    with atomic_write(path, mode="wb", encoding=None) as handle:
        tree.write(handle, encoding="utf-8", xml_declaration=True)
    return path
