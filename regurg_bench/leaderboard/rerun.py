"""``regurg-bench verify --entry ENTRY.json --rerun K``: re-run K students of a leaderboard entry from the entry
alone, and record the outcome beside it (:mod:`.verifications`).

Re-scoring an entry's evidence catches every number that does not follow from its logged outputs, but not
outputs that were made up and then scored honestly (a near-copy of the references a rule misses, one condition
boosted). Only training the students again can. From the entry's evidence bundle this reads the recorded
protocol config (its hash must be the entry's), rebuilds what the students need with the protocol's own steps
(the base model, the splits and every mitigation's data: no diagnostics), draws K students at random with the
entry id as the seed (a submitter cannot choose which; the best seed of a condition that beats REAL
significantly is always among them, :func:`suspect_student`), re-trains and re-evaluates them
(:func:`~regurg_bench.protocol.reproduce.rerun_students`) and compares each with its recorded samples:
*reproduced exactly* (every logged hypothesis the same), *reproduced within noise* (every corpus score
within the tolerance of :mod:`~regurg_bench.protocol.tolerance`, from the entry's own seed spread), else
*failed*, naming the student, task and metric. The entry's scored numbers are never changed.

On another machine the rebuilt generator outputs may differ from the recorded ones (CPU kernels round
differently, and the base model's pretraining amplifies it): a student's key then differs from the recorded
one and the record lists it under ``data_rebuilt_differently``; its comparison is still the within-noise one.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regurg_bench.leaderboard import evidence, verifications
from regurg_bench.leaderboard.schema import SubmissionError
from regurg_bench.leaderboard.verifications import Verification

KERNEL_VARIABLES = ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY")


@dataclass(frozen=True)
class EntryRerun:
    entry_id: str
    board_dir: Path
    record: Verification
    report: list[Any]  # Reproduced, per chosen student


def load_entry(entry_path: str | Path) -> tuple[Any, Path, dict[str, str]]:
    """(entry, its board folder, its evidence files): the entry's schema and content-derived id checked, its
    evidence bundle read back against its hash."""
    from regurg_bench.leaderboard.submit import read_entry

    path = Path(entry_path)
    if not path.is_file():
        raise SubmissionError(f"{path}: no such entry file")
    board_dir = path.resolve().parent.parent
    entry = read_entry(path, board_dir.name, recheck=False)
    if getattr(entry, "evidence", None) is None:  # a v1 entry: numbers only
        raise SubmissionError(f"{path}: schema {entry.schema_id} entries carry no evidence (no recorded config, no "
                              "logged samples): there is nothing to re-run them against")
    files = evidence.load(board_dir, entry.evidence.sha256, f"{board_dir.name}/entries/{path.name}")
    return entry, board_dir, files


#: a condition that beats REAL by this many standard errors on some metric has its best seed re-run first
SUSPECT_Z = 2.0


def suspect_student(entry: Any) -> str | None:
    """The student a re-run should not miss: the best seed of the condition that beats REAL by the most standard
    errors on any metric (:func:`~regurg_bench.leaderboard.rules.above_real`), when that is ``SUSPECT_Z`` or
    more. Regurgitated data and its mitigations rarely beat real data, so that is where made-up outputs show."""
    from regurg_bench.leaderboard.rules import above_real
    from regurg_bench.metric_table import higher_is_better

    best: tuple[float, str, str, str] | None = None
    for task, per in entry.scores.items():
        for metric in per.get("real", {}):
            for cond, (z, _gain) in above_real(per, metric).items():
                if z >= SUSPECT_Z and (best is None or z > best[0]):
                    best = (z, task, cond, metric)
    if best is None:
        return None
    _z, task, cond, metric = best
    seeds = entry.conditions[cond].seeds
    scores = entry.scores[task][cond][metric].per_seed
    sign = 1.0 if higher_is_better(metric) else -1.0
    return f"{cond}-s{max(zip(seeds, scores, strict=True), key=lambda t: sign * t[1])[0]}"


def draw_students(entry_id: str, names: list[str], rerun: int, first: str | None = None) -> list[str]:
    """The K students to re-run: ``first`` (the :func:`suspect_student`) if any, the others at random seeded by
    the entry id, so the draw is fixed before anyone runs anything and no submitter can choose it."""
    from regurg_bench.protocol.reproduce import choose

    if first is None or first not in names:
        return choose(names, rerun, random.Random(entry_id))
    rest = [n for n in names if n != first]
    return [first] + (choose(rest, rerun - 1, random.Random(entry_id)) if rerun > 1 else [])


def machine() -> tuple[str, dict[str, str]]:
    from regurg_bench.protocol.estimate import machine_id

    return machine_id(), {k: os.environ[k] for k in KERNEL_VARIABLES if os.environ.get(k)}


def rebuild(cfg: Any, out: Path, say: Callable[[str], None]) -> dict[str, Any]:
    """The base model, the splits and every mitigation's data of ``cfg`` in ``out``; the keyed student plan."""
    from regurg_bench.protocol.executors import make_executor
    from regurg_bench.protocol.plan import assign_keys, plan_students
    from regurg_bench.protocol.run import Runner
    from regurg_bench.protocol.steps import BuildSplits

    runner = Runner(cfg, out, say, False, make_executor("local"))
    try:
        manifest = runner.steps([BuildSplits("build", out / "splits", cfg=cfg)])["build"].record
        derived, _notes = runner.mitigation_data()
    finally:
        runner.close()
    return assign_keys(cfg, out, plan_students(cfg, out, manifest, derived))


def verify_entry(entry_path: str | Path, rerun: int = 2, *, by: str = "user", record: bool = True,
                 work_dir: str | Path | None = None, say: Callable[[str], None] = print) -> EntryRerun:
    """Re-run ``rerun`` students of the entry at ``entry_path`` (see the module docstring); append the outcome to
    the entry's verification file unless ``record`` is false."""

    from regurg_bench import __version__
    from regurg_bench.protocol.reproduce import (
        FAILED,
        WITHIN_NOISE,
        Recorded,
        read_results,
        recorded_config,
        rerun_students,
    )

    started = time.perf_counter()
    entry, board_dir, files = load_entry(entry_path)
    results = read_results(files["results.json"], f"{entry.entry_id}: evidence results.json")
    cfg = recorded_config(results, f"{entry.entry_id}: evidence results.json")
    if cfg.config_hash() != entry.config_hash:
        raise SubmissionError(f"{entry.entry_id}: its evidence records config {cfg.config_hash()}, the entry "
                              f"{entry.config_hash}")
    own = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="regurg-verify-entry-"))
    say(f"{entry.entry_id}: rebuilding the base model, splits and mitigation data in {own}")
    plan = rebuild(cfg, own, say)
    chosen = draw_students(entry.entry_id, list(plan), rerun, suspect_student(entry))
    recorded_students = results.students
    rebuilt_differently = sorted(n for n in chosen if n not in recorded_students
                                 or recorded_students[n].key != plan[n].key)
    say(f"re-running {', '.join(chosen)} (drawn with the entry id as the seed)"
        + (f"; rebuilt data differ from the recorded for {', '.join(rebuilt_differently)}" if rebuilt_differently
           else ""))
    report = rerun_students(cfg, plan, chosen, Recorded(results, evidence.BundleFiles(files, "evidence"),
                                                        trimmed=True, label=f"{entry.entry_id} evidence"),
                            work_dir=own / "rerun", say=say)
    outcomes = {r.student: r.outcome for r in report}
    overall = (FAILED if FAILED in outcomes.values() else WITHIN_NOISE if WITHIN_NOISE in outcomes.values()
               else "reproduced exactly")
    name, kernels = machine()
    failures = [{"student": r.student} | row for r in report for row in r.scores if row["within_noise"] is not True]
    failures += [{"student": r.student, "detail": r.detail} for r in report if r.failed and not r.scores]
    rec = Verification(by=by, date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), machine=name,
                       kernels=kernels, regurg_bench_version=__version__, rerun=rerun, students=outcomes,
                       outcome=overall, failures=failures, data_rebuilt_differently=rebuilt_differently,
                       seconds=round(time.perf_counter() - started, 1))
    if record:
        path = verifications.append(board_dir, entry.entry_id, rec)
        say(f"recorded in {path}")
    if work_dir is None:
        import shutil

        shutil.rmtree(own, ignore_errors=True)
    return EntryRerun(entry.entry_id, board_dir, rec, report)
