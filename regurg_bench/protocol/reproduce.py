"""``regurg-bench verify RUN --rerun K``: re-train and re-evaluate K students of a finished run and check
that they reproduce the recorded ones, exactly or within the run's own noise.

The students are re-planned from the run's recorded config with the protocol's own functions
(:func:`~regurg_bench.protocol.plan.plan_students`, :class:`~regurg_bench.protocol.steps.TrainStudent`,
:class:`~regurg_bench.protocol.steps.EvaluateStudent`), from the split and mitigation files in the run folder
(each student's key, a hash of its data and settings, must be the recorded one). Training on CPU is
deterministic on one machine, so the same config and seed give the same weights and the same greedy
outputs: *reproduced exactly* (logged samples byte for byte the recorded ones). Another machine's
kernels round differently, so a re-run there may write other outputs: *reproduced within noise* when
every corpus score of the re-run student lies within the tolerance of
:mod:`~regurg_bench.protocol.tolerance` (from the run's seed spread; the one ``compare`` uses) of the
recorded student's score, otherwise *failed*, naming the student, task, metric, difference and tolerance.
A student that continues another (M4) brings its base student along. With ``eval_only`` the run's own
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
from regurg_bench.results import RunResults


class ReproductionError(ValueError):
    """A run folder that cannot be re-run (missing files, another config, changed data)."""


EXACT, WITHIN_NOISE, FAILED = "reproduced exactly", "reproduced within noise", "failed"


@dataclass(frozen=True)
class Reproduced:
    student: str
    outcome: str  # EXACT, WITHIN_NOISE or FAILED
    detail: str  # "" when reproduced exactly, else the first difference per task (and why it failed)
    seconds: float
    #: per task x metric: recorded and reproduced corpus score, difference, tolerance (when samples differ)
    scores: tuple[dict[str, Any], ...] = ()
    #: the re-trained weights against the recorded fingerprint: "identical", "differ", "not recorded",
    #: "not re-trained" (``eval_only``)
    weights: str = "not recorded"

    @property
    def identical(self) -> bool:
        """Logged samples byte for byte the recorded ones."""
        return self.outcome == EXACT

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED


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


def _scores(files: Any, rel: str, label: str, metrics: list[str]) -> tuple[list[int], list[str], dict[str, float]]:
    """(doc ids, references, {metric: corpus score}) of one logged samples file (the leaderboard's reader)."""
    from regurg_bench.evaluation.signatures import corpus_score
    from regurg_bench.leaderboard.verify import read_samples

    ids, hyps, refs = read_samples(files, rel, label)
    return ids, refs, {m: corpus_score(m, hyps, refs) for m in metrics}


def within_noise(name: str, task: str, recorded: tuple[Any, str], reproduced: tuple[Any, str], metrics: list[str],
                 tolerances: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """Score both samples files of one student and task with the same code; return one row per metric
    and the problems (a metric outside its tolerance, other documents, no tolerance)."""
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.protocol.tolerance import within

    try:
        ids_a, refs_a, a = _scores(*recorded, f"{name}: recorded samples ({task})", metrics)
        ids_b, refs_b, b = _scores(*reproduced, f"{name}: reproduced samples ({task})", metrics)
    except SubmissionError as err:
        return [], [f"{task}: {err}"]
    if ids_a != ids_b or refs_a != refs_b:
        return [], [f"{task}: the reproduced samples cover other documents or references than the recorded ones"]
    rows, problems = [], []
    for m in metrics:
        tol = tolerances[m]
        diff = b[m] - a[m]
        ok = within(diff, tol)
        rows.append({"task": task, "metric": m, "recorded": round(a[m], 6), "reproduced": round(b[m], 6),
                     "difference": round(diff, 6), "tolerance": tol.to_dict(), "within_noise": ok})
        if ok is None:
            problems.append(f"{task}, {m}: difference {diff:+.4f} and no tolerance (the run has no condition whose "
                            "seeds score differently): only byte-identical samples reproduce")
        elif not ok:
            problems.append(f"{task}, {m}: recorded {a[m]:.4f}, reproduced {b[m]:.4f}, difference {diff:+.4f} "
                            f"outside the tolerance ±{tol.value:.4f}")
    return rows, problems


@dataclass(frozen=True)
class Recorded:
    """What a re-run is compared with: the recorded results.json and where its logged samples are (a run folder,
    or an entry's evidence bundle, whose samples are trimmed to what verification reads: ``trimmed``)."""

    results: RunResults
    files: Any  # a RunFiles (regurg_bench.leaderboard.evidence)
    trimmed: bool = False
    label: str = "run"

    def samples(self, rel: str) -> str:
        from regurg_bench.leaderboard import schema

        return self.files.text(rel, schema.MAX_SAMPLES_BYTES, f"{self.label}: recorded samples")


def read_results(text: str, label: str) -> RunResults:
    """A recorded results.json, typed (a bad one raises :class:`ReproductionError` naming the field)."""
    from pydantic import ValidationError

    from regurg_bench.results import describe_validation_error

    try:
        return RunResults.model_validate(json.loads(text))
    except ValueError as err:  # a ValidationError is a ValueError too
        raise ReproductionError(describe_validation_error(err, label) if isinstance(err, ValidationError)
                                else f"{label}: not JSON ({err})") from None


def recorded_config(results: RunResults, label: str):
    """The run's recorded protocol config, checked to hash to the recorded hash on this machine."""
    from regurg_bench.protocol.config import _validate

    try:
        cfg = _validate(results.config, f"{label}: field 'config'")
    except ConfigError as err:
        raise ReproductionError(str(err)) from None
    if cfg.config_hash() != results.config_hash:
        raise ReproductionError(f"{label}: the recorded config hashes to {cfg.config_hash()} on this machine, "
                                f"the run recorded {results.config_hash} (another resolved precision or "
                                "base-model recipe: the students would not be the same)")
    return cfg


def choose(names: list[str], rerun: int, draw: random.Random) -> list[str]:
    """``rerun`` of ``names`` (sorted first), drawn with ``draw``."""
    if not 1 <= rerun <= len(names):
        raise ReproductionError(f"--rerun must be between 1 and {len(names)} (the run's students)")
    return draw.sample(sorted(names), rerun)


def reproduce(run_dir: str | Path, rerun: int = 1, seed: int = 0, *, eval_only: bool = False,
              work_dir: str | Path | None = None, students: list[str] | None = None,
              say: Callable[[str], None] = print) -> list[Reproduced]:
    """Re-run ``rerun`` randomly chosen (seeded by ``seed``) students of ``run_dir`` (or the named
    ``students``) and compare their logged samples with the recorded ones: byte for byte, else their
    corpus scores within the run's seed-noise tolerance (:mod:`~regurg_bench.protocol.tolerance`)."""
    from regurg_bench.leaderboard.evidence import FolderFiles
    from regurg_bench.protocol.plan import assign_keys, plan_students

    run_dir = Path(run_dir)
    try:
        text = (run_dir / "results.json").read_text(encoding="utf-8")
        manifest = json.loads((run_dir / "splits" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ReproductionError(f"{run_dir}: not a finished run folder ({err})") from None
    results = read_results(text, str(run_dir / "results.json"))
    cfg = recorded_config(results, str(run_dir / "results.json"))
    derived = {k: v | {"dir": str(run_dir / v["dir"])} for k, v in results.mitigation_data.items()}
    plan = assign_keys(cfg, run_dir, plan_students(cfg, run_dir, manifest, derived))
    recorded = results.students
    for name, s in plan.items():
        if name not in recorded or recorded[name].key != s.key:
            raise ReproductionError(f"{run_dir}: student {name}: its data or settings no longer give the recorded "
                                    f"key ({recorded[name].key if name in recorded else None} recorded, {s.key} now): "
                                    "the split or mitigation files changed")
    if students is None:
        chosen = choose(list(plan), rerun, random.Random(seed))
    else:
        unknown = sorted(set(students) - set(plan))
        if unknown:
            raise ReproductionError(f"unknown student(s) {unknown}; the run has {sorted(plan)}")
        chosen = list(students)
    return rerun_students(cfg, plan, chosen, Recorded(results, FolderFiles(run_dir), label=str(run_dir)),
                          eval_only=eval_only, work_dir=work_dir, say=say)


def rerun_students(cfg: Any, plan: dict[str, Any], chosen: list[str], recorded: Recorded, *, eval_only: bool = False,
                   work_dir: str | Path | None = None, say: Callable[[str], None] = print) -> list[Reproduced]:
    """Re-train (unless ``eval_only``) and re-evaluate the ``chosen`` students of ``plan`` (and the students
    they continue) and compare each with its recorded samples."""
    from regurg_bench.protocol.tolerance import run_seed_spread, tolerance

    needed = set(chosen)
    for name in chosen:  # M4 continues its REGURG student: re-train that one too
        base = plan[name].base_student
        while base and not eval_only:
            needed.add(base)
            base = plan[base].base_student
    results = recorded.results
    tasks, metrics = list(results.tasks), list(cfg.scoring.metrics)
    comparisons = len(chosen) * len(tasks) * len(metrics)  # the family a verify call tests (Bonferroni)
    tolerances = {t: {m: tolerance(run_seed_spread([results], t, m), comparisons) for m in metrics} for t in tasks}
    own = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="regurg-verify-"))
    report: list[Reproduced] = []
    try:
        for name, s in plan.items():  # plan order: base students before the students that continue them
            if name in needed:
                r = _rerun_one(cfg, plan, s, name in chosen, recorded, tasks, metrics, tolerances, own, eval_only)
                if r is not None:
                    report.append(r)
                    say(f"{name}: {_message(r)}; weights {r.weights} ({r.seconds:.1f} s)")
    finally:
        from regurg_bench.evaluation.lora_engine import close_shared_engine

        close_shared_engine()  # eval.lora: adapter keeps one vLLM engine for the re-evaluations
        if work_dir is None:
            shutil.rmtree(own, ignore_errors=True)
    return report


def _rerun_one(cfg: Any, plan: dict[str, Any], s: Any, compare: bool, recorded: Recorded, tasks: list[str],
               metrics: list[str], tolerances: dict[str, dict[str, Any]], own: Path, eval_only: bool
               ) -> Reproduced | None:
    """Re-train and re-evaluate one student; compare it with its recorded samples when ``compare``."""
    from regurg_bench.leaderboard.evidence import FolderFiles, trim_samples
    from regurg_bench.protocol.fingerprints import folder_fingerprint
    from regurg_bench.protocol.plan import model_dir
    from regurg_bench.protocol.steps import eval_step, execute, train_step

    started = time.perf_counter()
    name = s.name
    if not eval_only:
        s.dir = own / "students" / f"{s.name}-{s.key}"
        execute(train_step(cfg, s, plan))
    elif not (s.dir and s.dir.is_dir()):
        raise ReproductionError(f"{name}: no checkpoint at {s.dir} to re-evaluate")
    if not compare:
        return None
    fingerprints = recorded.results.fingerprints.students if recorded.results.fingerprints else {}
    weights = "not re-trained" if eval_only else "not recorded"
    if not eval_only and fingerprints.get(name):
        weights = "identical" if folder_fingerprint(model_dir(s.dir)) == fingerprints[name] else "differ"
    record = execute(eval_step(cfg, s, tasks, own, plan)).record
    differences, rows, failures = [], [], []
    for task in tasks:
        got_rel, want_rel = record["samples_files"][task], recorded.results.students[name].samples[task]
        got = (Path(record["dir"]) / got_rel).read_text(encoding="utf-8")
        if recorded.trimmed:
            got = trim_samples(got, got_rel)
        want = recorded.samples(want_rel)
        if got == want:
            continue
        differences.append(f"{task}: {_first_difference(want.encode(), got.encode())}")
        task_rows, problems = within_noise(name, task, (recorded.files, want_rel),
                                           (FolderFiles(Path(record["dir"])), got_rel), metrics, tolerances[task])
        rows += task_rows
        failures += problems
    outcome = FAILED if failures else WITHIN_NOISE if differences else EXACT
    return Reproduced(name, outcome, "; ".join(differences + failures), time.perf_counter() - started, tuple(rows),
                      weights)


def _message(r: Reproduced) -> str:
    if r.outcome == EXACT:
        return "reproduced exactly (logged samples byte for byte the recorded ones)"
    differences = r.detail.split("; ")
    if r.outcome == WITHIN_NOISE:
        return ("reproduced within noise (" + "; ".join(differences) + "; every score within its tolerance: "
                + ", ".join(f"{row['metric']} {row['difference']:+.3f} (±{row['tolerance']['value']:.3f})"
                            for row in r.scores) + ")")
    return "FAILED: " + r.detail


def _failures(r: Reproduced) -> list[dict[str, Any]]:
    rows = [{"student": r.student} | row for row in r.scores if row["within_noise"] is not True]
    return rows or [{"student": r.student, "detail": r.detail}]


def summary(report: list[Reproduced]) -> dict[str, Any]:
    """The CLI's JSON line: ``identical`` (every student byte for byte), ``reproduced`` (none failed: the exit
    status), each student's outcome, and every score outside its tolerance."""
    from regurg_bench.protocol.tolerance import DEFINITION

    return {"students": [r.student for r in report], "identical": all(r.identical for r in report),
            "reproduced": not any(r.failed for r in report),
            "outcomes": {r.student: r.outcome for r in report},
            "weights": {r.student: r.weights for r in report},
            "failures": [row for r in report if r.failed for row in _failures(r)],
            "scores": {r.student: list(r.scores) for r in report if r.scores},
            "tolerance": DEFINITION,
            "seconds": round(sum(r.seconds for r in report), 1)}
