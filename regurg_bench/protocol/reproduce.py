"""``regurg-bench verify RUN --rerun K``: re-train and re-evaluate K students of a finished run and check
that their logged samples come out byte for byte the same.

The students are re-planned from the run's recorded config with the protocol's own functions
(:func:`~regurg_bench.protocol.plan.plan_students`, :class:`~regurg_bench.protocol.steps.TrainStudent`,
:class:`~regurg_bench.protocol.steps.EvaluateStudent`), from the split and mitigation files in the run folder
(each student's key, a hash of its data and settings, must be the recorded one). Training on CPU is
deterministic, so the same config and seed give the same weights and the same greedy outputs. A
student that continues another (M4) brings its base student along. With ``eval_only`` the run's own
checkpoints are re-evaluated instead (for runs whose checkpoints are published).
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regurg_bench.builders.config import ConfigError


class ReproductionError(ValueError):
    """A run folder that cannot be re-run (missing files, another config, changed data)."""


@dataclass(frozen=True)
class Reproduced:
    student: str
    identical: bool
    detail: str  # "" when identical, else the first difference
    seconds: float


def _first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.split(b"\n"), b.split(b"\n")
    for i, (x, y) in enumerate(zip(la, lb, strict=False), 1):
        if x != y:
            try:
                doc = json.loads(x).get("doc_id")
            except (ValueError, AttributeError):
                doc = None
            return f"line {i}" + (f" (doc_id {doc})" if doc is not None else "") + " differs"
    return f"{len(la)} lines recorded, {len(lb)} reproduced"


def reproduce(run_dir: str | Path, rerun: int = 1, seed: int = 0, *, eval_only: bool = False,
              work_dir: str | Path | None = None, students: list[str] | None = None,
              say: Callable[[str], None] = print) -> list[Reproduced]:
    """Re-run ``rerun`` randomly chosen (seeded by ``seed``) students of ``run_dir`` (or the named
    ``students``) and compare their logged samples with the recorded ones, byte for byte."""
    from regurg_bench.protocol.config import _validate
    from regurg_bench.protocol.plan import assign_keys, plan_students
    from regurg_bench.protocol.steps import eval_step, execute, train_step

    run_dir = Path(run_dir)
    try:
        results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
        manifest = json.loads((run_dir / "splits" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReproductionError(f"{run_dir}: not a finished run folder ({err})") from None
    try:
        cfg = _validate(results["config"], f"{run_dir / 'results.json'}: field 'config'")
    except ConfigError as err:
        raise ReproductionError(str(err)) from None
    if cfg.config_hash() != results.get("config_hash"):
        raise ReproductionError(f"{run_dir}: the recorded config hashes to {cfg.config_hash()} on this machine, "
                                f"the run recorded {results.get('config_hash')} (another resolved precision or "
                                "base-model recipe: the students would not be the same)")
    derived = {k: v | {"dir": str(run_dir / v["dir"])} for k, v in results.get("mitigation_data", {}).items()}
    plan = assign_keys(cfg, run_dir, plan_students(cfg, run_dir, manifest, derived))
    recorded = results["students"]
    for name, s in plan.items():
        if name not in recorded or recorded[name].get("key") != s.key:
            raise ReproductionError(f"{run_dir}: student {name}: its data or settings no longer give the recorded "
                                    f"key ({recorded.get(name, {}).get('key')} recorded, {s.key} now): the split "
                                    "or mitigation files changed")
    if students is None:
        if not 1 <= rerun <= len(plan):
            raise ReproductionError(f"--rerun must be between 1 and {len(plan)} (the run's students)")
        chosen = random.Random(seed).sample(sorted(plan), rerun)
    else:
        unknown = sorted(set(students) - set(plan))
        if unknown:
            raise ReproductionError(f"unknown student(s) {unknown}; the run has {sorted(plan)}")
        chosen = list(students)
    needed = set(chosen)
    for name in chosen:  # M4 continues its REGURG student: re-train that one too
        base = plan[name].base_student
        while base and not eval_only:
            needed.add(base)
            base = plan[base].base_student
    tasks = list(results["tasks"])
    own = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="regurg-verify-"))
    report: list[Reproduced] = []
    try:
        for name, s in plan.items():  # plan order: base students before the students that continue them
            if name not in needed:
                continue
            started = time.perf_counter()
            if not eval_only:
                s.dir = own / "students" / f"{s.name}-{s.key}"
                execute(train_step(cfg, s, plan))
            elif not (s.dir and s.dir.is_dir()):
                raise ReproductionError(f"{name}: no checkpoint at {s.dir} to re-evaluate")
            if name not in chosen:
                continue
            record = execute(eval_step(cfg, s, tasks, own)).record
            problems = []
            for task in tasks:
                got = (Path(record["dir"]) / record["samples_files"][task]).read_bytes()
                want = (run_dir / recorded[name]["samples"][task]).read_bytes()
                if got != want:
                    problems.append(f"{task}: {_first_difference(want, got)}")
            report.append(Reproduced(name, not problems, "; ".join(problems), time.perf_counter() - started))
            say(f"{name}: " + ("logged samples reproduced byte for byte" if not problems
                               else "NOT reproduced: " + "; ".join(problems))
                + f" ({time.perf_counter() - started:.1f} s)")
    finally:
        if work_dir is None:
            shutil.rmtree(own, ignore_errors=True)
    return report


def summary(report: list[Reproduced]) -> dict[str, Any]:
    return {"students": [r.student for r in report], "identical": all(r.identical for r in report),
            "seconds": round(sum(r.seconds for r in report), 1)}
