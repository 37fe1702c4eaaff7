"""Run the protocol: a thin runner over steps (:mod:`~regurg_bench.protocol.steps`) on an executor.

build -> diagnose and each mitigation's data (in waves) -> train and evaluate every student -> score ->
report. Each step is keyed by the fingerprint of its inputs and marks completion last, so a killed run
resumes at the first unfinished step and re-running a finished run only reads ``run_done.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from regurg_bench.protocol.config import ProtocolConfig
from regurg_bench.protocol.plan import assign_keys, plan_students, planned_conditions
from regurg_bench.protocol.steps import (
    RUN_LOG,
    BuildSplits,
    Outcome,
    Step,
    diagnose_step,
    eval_step,
    train_step,
    write_json,
)

RUN_DONE = "run_done.json"


def run_protocol(cfg: ProtocolConfig, out: str | Path, *, dry_run: bool = False, say: Callable[[str], None] = print,
                 show_progress: bool = False, executor: str = "local", ray_address: str | None = None,
                 num_cpus: int | None = None, workers: int | str | None = None) -> dict[str, Any]:
    """Run (or resume) the whole protocol into ``out``; return the results dict (results.json).

    ``workers``: the local executor's worker processes for training and evaluation on CPU (None: ``auto``,
    or ``REGURG_BENCH_WORKERS``; 1: every step in this process). The numbers do not depend on it."""
    from regurg_bench.protocol.config import check_config
    from regurg_bench.protocol.executors import make_executor
    from regurg_bench.protocol.report import score_run, write_reports

    check_config(cfg)  # every config error before any work (a dry run included)
    out = Path(out)
    if dry_run:
        return dry_run_plan(cfg, out, say)
    finished = _finished_run(cfg, out, say)
    if finished is not None:
        return finished
    run = Runner(cfg, out, say, show_progress, make_executor(executor, ray_address=ray_address, num_cpus=num_cpus,
                                                                    workers=workers))
    try:
        manifest = run.steps([BuildSplits("build", out / "splits", cfg=cfg)])["build"].record
        run.progress.done("base model", "build")
        run.say(f"[build] {manifest['matched']} matched pairs, {len(manifest['conditions'])} conditions "
            f"({'cached' if manifest.get('up_to_date') else 'built'})")
        tasks = cfg.eval.tasks or [f"regurg_mt_{'-'.join(_direction(out / 'splits'))}"]
        derived, notes, diagnostics = run.data()
        students = assign_keys(cfg, out, plan_students(cfg, out, manifest, derived))
        evals = run.students(students, tasks)
        t = time.perf_counter()
        results = score_run(cfg, out, students, evals, tasks, derived, manifest, notes, diagnostics)
        run.timer["score"] = time.perf_counter() - t
        if cfg.collapse is not None:  # degradation across generations: its steps in protocol/collapse_steps.py
            from regurg_bench.protocol.collapse import run_collapse

            section = run_collapse(cfg, out, tasks, run, students, evals)
            results = results.model_copy(update={"collapse": section})
        t = time.perf_counter()
        timings = {k: round(v, 2) for k, v in run.timer.items()}
        timings["total"] = round(time.perf_counter() - run.started, 2)
        results = write_reports(results.model_copy(update={"steps": run.executed + ["score", "report"],
                                                           "timings_s": timings}), out)
        timings = timings | {"report": round(time.perf_counter() - t, 2)}
        results = results.model_copy(update={"timings_s": timings})
        write_json(out / "results.json", results.to_data())  # again, with the report's own time
        write_json(out / RUN_DONE, {"config_hash": cfg.config_hash(),
                                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    finally:
        run.close()
    run.say("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return results.to_data()


def _finished_run(cfg: ProtocolConfig, out: Path, say: Callable[[str], None]) -> dict[str, Any] | None:
    done = out / RUN_DONE
    if done.is_file() and (out / "results.json").is_file():
        if json.loads(done.read_text(encoding="utf-8")).get("config_hash") == cfg.config_hash():
            say(f"{out}: finished run with the same config ({cfg.config_hash()[:19]}); nothing to do. "
                f"Report: {out / 'report.md'}")
            return json.loads((out / "results.json").read_text(encoding="utf-8")) | {"up_to_date": True}
    return None


class Runner:
    """Hands batches of steps to the executor and keeps the run's bookkeeping: which steps ran (in plan
    order), the time per stage, the progress bar, the messages."""

    def __init__(self, cfg: ProtocolConfig, out: Path, say: Callable[[str], None], show_progress: bool,
                 executor: Any) -> None:
        self.cfg, self.out, self.executor = cfg, out, executor
        self.started = time.perf_counter()
        self.timer: dict[str, float] = {}
        self.executed: list[str] = []
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": cfg.model_dump(mode="json"), "config_hash": cfg.config_hash(),
                                         "resolved": cfg.resolved()})
        self.progress = RunProgress(cfg, enabled=show_progress)
        self.say = _also_logged(self.progress.wrap(say), out / RUN_LOG)
        self._counts: dict[str, int] = {}
        self._totals: dict[str, int] = {}

    def steps(self, steps: list[Step]) -> dict[str, Outcome]:
        self.executed += [s.name for s in steps]
        for s in steps:
            self._totals[s.stage] = self._totals.get(s.stage, 0) + 1
        return self.executor.run(steps, on_done=self._done)

    def add(self, stage: str, seconds: float) -> None:
        self.timer[stage] = self.timer.get(stage, 0.0) + seconds

    def _done(self, o: Outcome) -> None:
        self.timer[o.stage] = self.timer.get(o.stage, 0.0) + o.seconds
        student = o.name.rsplit(":", 1)[-1]
        if o.stage in ("train", "eval", "collapse_train", "collapse_eval"):
            self._counts[o.stage] = self._counts.get(o.stage, 0) + 1
            verb = "cached" if o.cached else ("trained" if o.stage.endswith("train") else "evaluated")
            label = o.stage.replace("_", " ")
            self.say(f"[{label} {self._counts[o.stage]}/{self._totals[o.stage]}] {student}: {verb} "
                     f"({o.seconds:.1f} s)" + (f" -> {o.record['dir']}" if o.stage.endswith("train") else ""))
        elif o.message:
            self.say(o.message)
        self.progress.done_item(o.stage, student)

    def data(self) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
        """Diagnostics, then each mitigation's data (:meth:`mitigation_data`)."""
        diagnostics = self.steps([diagnose_step(self.cfg, self.out)])["diagnose"].record
        derived, notes = self.mitigation_data()
        return derived, notes, diagnostics

    def mitigation_data(self) -> tuple[dict[str, Any], list[str]]:
        """Each mitigation's data, wave by wave (a wave may be keyed by an earlier one's files)."""
        from regurg_bench.protocol.mitigations import enabled_mitigations

        derived: dict[str, Any] = {}
        notes: list[str] = []
        for m in enabled_mitigations(self.cfg):
            for wave in m.data_waves(self.cfg, self.out, derived, notes):
                for name, o in self.steps(wave).items():
                    if name.startswith("data:"):
                        derived[name.removeprefix("data:")] = o.record
        self.progress.done("data")
        return derived, notes

    def students(self, students: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
        """Train and evaluate every student (independent steps: an executor may run them side by side)."""
        from regurg_bench.evaluation.lora_engine import close_shared_engine, engine_starts

        trains = [train_step(self.cfg, s, students) for s in students.values()]
        order = list(students.values())
        if self.cfg.eval.lora == "adapter":  # students on one base next to each other: one engine for them all
            order.sort(key=lambda s: s.base_student is not None)  # (M4 continues a merged student: its own base)
        evals = [eval_step(self.cfg, s, tasks, self.out, students) for s in order]
        starts = engine_starts()
        if getattr(self.executor, "uses_workers", lambda _steps: False)(trains + evals):
            self.say(f"[students] training and evaluation on {self.executor.workers} worker processes "
                     "(--workers; the numbers do not depend on it)")
        started = time.perf_counter()
        try:
            outcomes = self.steps(trains + evals)
            self.timer["students"] = time.perf_counter() - started  # wall: the summed train/eval steps overlap
        finally:
            close_shared_engine()  # its memory (a GPU's, 90 % by default) is free for what comes next (collapse)
        if engine_starts() > starts:  # counted in this process (the local executor)
            computed = sum(not outcomes[e.name].cached for e in evals)
            self.say(f"[eval] {engine_starts() - starts} vLLM engine start(s) for {computed} evaluated LoRA "
                     "students (eval.lora: adapter: one engine per base model)")
        return {s.name: outcomes[f"eval:{s.name}"].record for s in students.values()}

    def close(self) -> None:
        from regurg_bench.evaluation.lora_engine import close_shared_engine

        close_shared_engine()
        self.progress.close()
        self.executor.close()


def _also_logged(say: Callable[[str], None], log: Path) -> Callable[[str], None]:
    """``say``, and the message appended to the run's log file (where lm-eval's own output goes too)."""
    def both(message: str) -> None:
        say(message)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n")

    return both


def _direction(splits: Path) -> tuple[str, str]:
    with open(splits / "real.jsonl", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    return row["src_lang"], row["tgt_lang"]


class RunProgress:
    """One progress bar over the whole run, in estimated seconds of work (from this machine's calibration),
    so its ETA spans every stage: build, data, each student's training and evaluation, scoring."""

    def __init__(self, cfg: ProtocolConfig, enabled: bool) -> None:
        self.bar = None
        self.items: dict[tuple[str, str], float] = {}
        if not enabled:
            return
        from tqdm.auto import tqdm
        from transformers.utils import logging as hf_logging

        from regurg_bench.protocol.estimate import plan_work

        hf_logging.disable_progress_bar()  # one bar for the run, not one per checkpoint load
        cal = _calibration(cfg)
        for it in plan_work(cfg, planned_conditions(cfg)):
            self.items[(it.stage, it.name)] = it.seconds(cal)
        self.bar = tqdm(total=round(sum(self.items.values())), desc="regurg-bench run", unit="s",
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} elapsed, ETA {remaining} "
                                   "(est. {total} s of work)", dynamic_ncols=True)

    def wrap(self, say: Callable[[str], None]) -> Callable[[str], None]:
        if self.bar is None:
            return say
        from tqdm.auto import tqdm

        return lambda message: tqdm.write(str(message))

    def _advance(self, seconds: float) -> None:
        if self.bar is not None and seconds:
            self.bar.update(min(round(seconds), self.bar.total - self.bar.n))

    def done(self, *stages: str) -> None:
        for key in [k for k in self.items if k[0] in stages]:
            self._advance(self.items.pop(key))

    def done_item(self, stage: str, name: str) -> None:
        self._advance(self.items.pop((stage, name), 0.0))

    def close(self) -> None:
        if self.bar is not None:
            self._advance(sum(self.items.values()))
            self.bar.close()


def planned_steps(cfg: ProtocolConfig) -> list[str]:
    """The names of the steps a run from an empty folder executes, in order (before any data exist)."""
    from regurg_bench.protocol.mitigations import enabled_mitigations

    students = [f"{c}-s{s}" for s in cfg.seeds for c in planned_conditions(cfg)]
    evals = list(students)
    if cfg.eval.lora == "adapter":  # as Runner.students orders them: the students that continue another last
        late = {c for m in enabled_mitigations(cfg) if m.continues_student
                for g in (cfg.mitigated_generators() if m.per_generator else [None]) for c in m.planned_conditions(cfg, g)}
        evals.sort(key=lambda name: name.rsplit("-s", 1)[0] in late)
    collapse: list[str] = []
    if cfg.collapse is not None:
        from regurg_bench.protocol.collapse_steps import planned_collapse_steps

        collapse = planned_collapse_steps(cfg)
    return (["build", "diagnose"] + [n for m in enabled_mitigations(cfg) for n in m.planned_data(cfg)]
            + [f"train:{s}" for s in students] + [f"eval:{s}" for s in evals] + collapse + ["score", "report"])


def dry_run_plan(cfg: ProtocolConfig, out: Path, say: Callable[[str], None], *, estimate: bool = True) -> dict[str, Any]:
    """Print the steps without running anything (student folders are keyed once their data exist), and
    an estimate of the run's compute and duration on this machine from a short calibration."""
    from regurg_bench.protocol.mitigations import enabled_mitigations

    gens = list(cfg.build.generators)
    conds = planned_conditions(cfg)
    steps = planned_steps(cfg)
    status = "built" if (out / "splits" / "manifest.json").is_file() else "to build"
    say(f"config {cfg.config_hash()[:19]} -> {out}")
    say(f"1. build splits ({cfg.build.corpus}, {cfg.build.size} pairs, generators {gens}): {status}")
    data = [n for m in enabled_mitigations(cfg) for n in m.planned_data(cfg)]
    say(f"2. diagnose the splits; mitigation data ({', '.join(m.label for m in enabled_mitigations(cfg) if m.planned_data(cfg))}): "
        + ", ".join(data))
    students = [f"{c}-s{s}" for s in cfg.seeds for c in conds]
    budget = (f"{cfg.train['max_steps']} steps" if cfg.train.get("max_steps")
              else f"{cfg.train.get('epochs', 1.0)} epochs")
    method = cfg.train.get("method", "full")
    say(f"3. train {len(students)} students = {len(conds)} conditions x seeds {cfg.seeds} "
        f"({cfg.train.get('base_model', 'scratch:tiny')}, {method}, {budget} each): {', '.join(conds)}")
    say(f"4. evaluate each with {cfg.eval.backend} on {cfg.eval.tasks or 'regurg_mt_<src>-<tgt>'} "
        f"(limit {cfg.eval.limit}, max_gen_toks {cfg.eval.max_gen_toks})")
    if cfg.collapse is not None:
        c, n = cfg.collapse, sum(s.startswith("collapse:") for s in steps)
        say(f"   then collapse ({n} steps; generation 0 = the REAL students; each chain after its own generation "
            f"k-1, seeds {cfg.seeds}):")
        for k in range(1, c.generations + 1):
            conds = [f"{m}_gen{k}" for m in c.modes]
            decode = "gen0 decodes the training sources once for every mode" if k == 1 else \
                f"each mode's gen{k - 1} decodes the training sources"
            say(f"   generation {k}: {decode}; then data, train, evaluate {', '.join(conds)}")
    say(f"5. score {cfg.scoring.metrics} ({cfg.scoring.resamples} paired bootstrap resamples) and "
        "write results.json, report.md, report.html and the plots")
    say(f"{len(steps)} steps; each student's training and evaluation asks the executor for "
        f"{cfg.resources.cpus:g} CPU and {cfg.resources.gpus:g} GPU")
    plan: dict[str, Any] = {"dry_run": True, "students": students, "steps": steps, "config_hash": cfg.config_hash()}
    if estimate:
        from regurg_bench.protocol.estimate import plan_work, summarise

        est = summarise(plan_work(cfg, conds), _calibration(cfg))
        cal = est["calibration"]
        say("estimate (from an empty run folder; cached steps cost nothing): "
            + ", ".join(f"{k} {v['seconds'] / 60:.1f} min" for k, v in est["stages"].items())
            + f"; total ~{est['seconds'] / 60:.0f} min, {est['tflop']:.1f} TFLOP of model compute (train and "
            "eval one after the other: on CPU the local executor's worker processes overlap them, --workers)")
        if cal:
            say(f"   this machine: {cal['machine']}; matmul fp32 {cal['fp32_gflops']:.0f} GFLOP/s, "
                f"bf16 {cal['bf16_gflops']:.0f} GFLOP/s (calibrated once, cached)")
        plan["estimate"] = est
    return plan


def _calibration(cfg: ProtocolConfig):
    """This machine's calibration for the run's student size (None when the students are not a preset)."""
    from regurg_bench.models.base_models import BASE_MODELS
    from regurg_bench.models.scratch import PRESETS
    from regurg_bench.protocol.estimate import calibrate

    base = str(cfg.train.get("base_model", "scratch:tiny"))
    preset = BASE_MODELS[base].preset if base in BASE_MODELS else base.removeprefix("scratch:")
    return calibrate(preset) if preset in PRESETS else None

