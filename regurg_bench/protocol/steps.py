"""The protocol's steps: small objects with a key, a folder, a ``run`` method and a completion marker.

A step's folder is named by the fingerprint of its inputs; its marker (``done.json``, or the trainer's
``training_card.json``) is written last, so a killed run resumes at the first unfinished step and a finished
step is never redone. :func:`execute` holds a lock per step folder while it computes, so two workers (or two
``regurg-bench run`` processes on one folder) never write the same step: one computes, the other waits and
then reads the marker. Steps do not know which executor runs them (:mod:`regurg_bench.protocol.executors`).

- ``build``: the builder's own config hash (``splits/manifest.json``); ``heldout`` likewise (M3's sources);
- ``diagnose`` and each mitigation's ``data:*`` step: sha256 of the input files + settings;
- ``train:<student>``: the student key -> ``students/<condition>-s<seed>-<key>``;
- ``eval:<student>``: the student's key + eval settings -> ``evals/<condition>-s<seed>-<key>``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from regurg_bench.assets import file_lock
from regurg_bench.atomic import atomic_write
from regurg_bench.protocol.plan import SCHEMA_VERSION, Student, eval_settings, model_dir, sha

if TYPE_CHECKING:
    from regurg_bench.protocol.config import ProtocolConfig

DONE = "done.json"
#: the run's log file (in the run folder): its messages, and lm-eval's output that the terminal does not show
RUN_LOG = "run.log"


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_ids(path: Path, ids: list[str]) -> None:
    with atomic_write(path) as handle:
        handle.write("".join(f"{i}\n" for i in ids))


@dataclass(frozen=True)
class Resources:
    """What one step needs from the executor (Ray schedules on it; the local executor ignores it)."""

    cpus: float = 1.0
    gpus: float = 0.0


@dataclass
class Step:
    """One unit of protocol work. Subclasses set ``stage`` and implement :meth:`run`."""

    name: str
    folder: Path
    deps: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    stage: ClassVar[str] = "step"

    def done(self) -> dict[str, Any] | None:
        """The record of a finished step (its marker), or None."""
        marker = self.folder / DONE
        return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None

    def run(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def finish(self, record: dict[str, Any]) -> None:
        """Write the completion marker (last)."""
        write_json(self.folder / DONE, record)

    def output(self, record: dict[str, Any]) -> dict[str, Any]:
        """What the runner receives (the record, plus where it lives)."""
        return record | {"dir": str(self.folder)}

    def message(self, record: dict[str, Any]) -> str | None:
        """A line worth showing the user once the step is done (None: nothing)."""
        return None

    @property
    def side_by_side(self) -> bool:
        """Whether the local executor may run this step in a worker process beside other steps: its result
        depends on neither (the step pins its thread count; see executors.LocalExecutor)."""
        return False


def on_cpu(cfg: ProtocolConfig) -> bool:
    """The config asks for no GPU and torch sees none: training and ``hf`` evaluation compute on CPU."""
    if cfg.resources.gpus:
        return False
    import torch

    return not torch.cuda.is_available()


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` while the block runs (None: left as it is)."""
    import torch

    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@dataclass(frozen=True)
class Outcome:
    name: str
    stage: str
    record: dict[str, Any]
    cached: bool
    seconds: float
    message: str | None = None


def execute(step: Step) -> Outcome:
    """Run ``step`` unless its marker exists; safe against concurrent workers (one lock per step folder)."""
    started = time.perf_counter()
    record = step.done()
    if record is None:
        with file_lock(step.folder.parent / f".{step.folder.name}.lock"):
            record = step.done()  # another worker may have finished it while we waited
            if record is None:
                step.folder.mkdir(parents=True, exist_ok=True)
                record = step.run()
                step.finish(record)
                return Outcome(step.name, step.stage, step.output(record), False, time.perf_counter() - started,
                               step.message(record))
    return Outcome(step.name, step.stage, step.output(record), True, time.perf_counter() - started,
                   step.message(record))


def cached_data_step(name: str, folder: Path, make: Callable[[Path], dict[str, Any]], stage: str = "data",
                     describe: Callable[[dict[str, Any]], str] | None = None) -> Step:
    """A data step from a function of its folder (used by the mitigations); ``describe`` words its record."""
    return FunctionStep(name, folder, make=make, stage_name=stage, describe=describe)


def cached(folder: Path, make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Run ``make(folder)`` as a step unless ``folder/done.json`` exists: (its record, was it cached)."""
    o = execute(FunctionStep(folder.name, folder, make=make))
    return {k: v for k, v in o.record.items() if k != "dir"}, o.cached


@dataclass
class FunctionStep(Step):
    make: Callable[[Path], dict[str, Any]] | None = None
    stage_name: str = "data"
    describe: Callable[[dict[str, Any]], str] | None = None

    def message(self, record: dict[str, Any]) -> str | None:
        return self.describe(record) if self.describe else None

    @property
    def stage(self) -> str:  # type: ignore[override]
        return self.stage_name

    def run(self) -> dict[str, Any]:
        assert self.make is not None
        return self.make(self.folder)


# --------------------------------------------------------------------------------------- the steps
@dataclass
class BuildSplits(Step):
    """The matched real / regurgitated splits (the builder caches by its own config hash)."""

    cfg: ProtocolConfig | None = None
    stage: ClassVar[str] = "build"

    def done(self) -> dict[str, Any] | None:
        return None  # the builder decides (it returns at once when its manifest matches)

    def run(self) -> dict[str, Any]:
        from regurg_bench.builders.build import build_splits
        from regurg_bench.builders.targets import make_target_generators

        assert self.cfg is not None
        if not self.cfg.build.generators:
            raise ValueError("build.generators is empty: the protocol needs at least one generator (REGURG)")
        gens = make_target_generators(self.cfg.build)
        try:
            return build_splits(self.cfg.build, self.folder, gens, progress=False)
        finally:
            for g in gens.values():
                g.close()

    def finish(self, record: dict[str, Any]) -> None:
        pass  # the builder writes its manifest last

    def output(self, record: dict[str, Any]) -> dict[str, Any]:
        return record


@dataclass
class HeldoutSplits(BuildSplits):
    """M3's held-out sources with human and generated targets (a build of its own)."""

    stage: ClassVar[str] = "m3_detector"


@dataclass
class Diagnose(Step):
    """Diagnostics of the training splits (human vs each generator): error proxies, diversity, uniformity."""

    splits: Path | None = None
    stage: ClassVar[str] = "diagnostics"

    def run(self) -> dict[str, Any]:
        from regurg_bench.diagnostics.runner import diagnose

        report = diagnose(self.splits, label="training splits")
        report.write_json(self.folder / "diagnostics.json")
        report.plot(self.folder / "diagnostics.png")
        return {"stats": {k: {"label": info.get("label", k), "family": info.get("family"),
                              "better": info.get("better"),
                              "values": {c: report.value(c, k) for c in report.conditions}}
                          for k, info in report.stat_info.items() if info.get("key")},
                "n_pairs": report.n_pairs, "token_budget": report.token_budget, "notes": report.notes}

    def output(self, record: dict[str, Any]) -> dict[str, Any]:
        rel = f"{self.folder.parent.name}/{self.folder.name}"
        return record | {"file": f"{rel}/diagnostics.json", "plot": f"{rel}/diagnostics.png"}


def diagnose_step(cfg: ProtocolConfig, out: Path) -> Diagnose:
    from regurg_bench.protocol.plan import file_sha

    splits = out / "splits"
    files = [splits / "real.jsonl"] + [splits / f"regurg_{g}.jsonl" for g in cfg.build.generators]
    key = sha("diagnostics", SCHEMA_VERSION, [file_sha(f) for f in files])[:16]
    return Diagnose("diagnose", out / "derived" / f"diagnostics-{key}", splits=splits)


@dataclass
class TrainStudent(Step):
    """One student, trained into its fingerprinted folder (the trainer writes its card last)."""

    cfg: ProtocolConfig | None = None
    student: Student | None = None
    base_dir: Path | None = None  # the folder of the student it continues (M4)
    stage: ClassVar[str] = "train"

    def done(self) -> dict[str, Any] | None:
        from regurg_bench.training.card import read_card

        return {"student": self.student.name, "dir": str(self.folder)} if read_card(self.folder) is not None else None

    def run(self) -> dict[str, Any]:
        from regurg_bench.training import TrainConfig, train

        assert self.cfg is not None and self.student is not None
        s = self.student
        overrides = {**self.cfg.train, **s.train_overrides}
        if self.base_dir is not None:  # resolved now: a LoRA base student's merged/ exists once it is trained
            overrides["base_model"] = str(model_dir(self.base_dir))
        train(TrainConfig(split=str(s.split), out=str(self.folder), seed=s.seed, progress=False,
                          curriculum=str(s.curriculum) if s.curriculum else None,
                          forget=str(s.forget) if s.forget else None, **overrides))
        return {"student": s.name, "dir": str(self.folder)}

    def finish(self, record: dict[str, Any]) -> None:
        pass  # the training card is the marker

    @property
    def side_by_side(self) -> bool:
        return self.cfg is not None and on_cpu(self.cfg)  # the trainer pins train.num_threads itself


def train_step(cfg: ProtocolConfig, s: Student, students: dict[str, Student]) -> TrainStudent:
    base = students[s.base_student] if s.base_student else None
    return TrainStudent(f"train:{s.name}", s.dir, deps=(f"train:{base.name}",) if base else (),
                        resources=Resources(cfg.resources.cpus, cfg.resources.gpus), cfg=cfg, student=s,
                        base_dir=base.dir if base else None)


@dataclass
class EvaluateStudent(Step):
    """lm-eval on the student's checkpoint, samples logged (the scoring reads only those)."""

    cfg: ProtocolConfig | None = None
    student: Student | None = None
    tasks: tuple[str, ...] = ()
    key: str = ""
    base_dir: Path | None = None  # the folder of the student it continues (M4): its adapter's base
    log: Path | None = None  # the run's log file: lm-eval's messages and bars go there, not to the terminal
    stage: ClassVar[str] = "eval"

    def model_args(self) -> str:
        """lm-eval's ``--model_args`` for this student: its checkpoint (merged, for a LoRA student), or with
        ``eval.lora: adapter`` the base it was trained from plus its adapter (``lora_local_path``), exactly what
        a user would pass to ``lm_eval --model vllm``. The configured dtype, for vLLM too: its "auto" casts a
        float32 checkpoint to bf16 on CPU."""
        assert self.cfg is not None and self.student is not None
        s, e = self.student, self.cfg.eval
        if self.cfg.train.get("method") != "lora" or e.lora == "merged":
            return f"pretrained={model_dir(s.dir)},dtype={e.dtype}"
        from regurg_bench.evaluation.lora_engine import max_lora_rank
        from regurg_bench.training.config import TrainConfig
        from regurg_bench.training.trainer import resolve_base_model

        if s.base_student and self.base_dir is None:
            raise ValueError(f"{s.name} continues {s.base_student}: eval_step needs the run's students to find "
                             "its adapter's base")
        train = {**self.cfg.train, **s.train_overrides}
        # the base the trainer loaded (TrainStudent.run): the continued student's merged model, else train.base_model
        base = model_dir(self.base_dir) if self.base_dir else resolve_base_model(str(train["base_model"])).path
        rank = max_lora_rank(int(train.get("lora_r", TrainConfig.lora_r)))
        base = Path(base).resolve() if Path(base).is_dir() else base  # a hub id stays one
        return f"pretrained={base},lora_local_path={Path(s.dir).resolve()},max_lora_rank={rank},dtype={e.dtype}"

    def threads(self) -> int | None:
        """torch threads for the evaluation: the student's ``train.num_threads`` (the count a run evaluated at
        when it trained every student first, in one process), else torch's default. Pinned per step, the
        outputs do not depend on which process evaluates or on what ran there before (the thread count
        decides which CPU kernels, and so which bits, a step's arithmetic gets)."""
        assert self.cfg is not None and self.student is not None
        return {**self.cfg.train, **self.student.train_overrides}.get("num_threads")

    @property
    def side_by_side(self) -> bool:
        return self.cfg is not None and self.cfg.eval.backend == "hf" and on_cpu(self.cfg)

    def run(self) -> dict[str, Any]:
        from regurg_bench.evaluation.runner import EvalRequest, run_eval

        assert self.cfg is not None and self.student is not None
        s, tasks, folder = self.student, list(self.tasks), self.folder
        for stale in folder.rglob("*.json*"):  # a partial earlier attempt may have left files: start clean
            stale.unlink()
        e = self.cfg.eval
        adapter = self.cfg.train.get("method") == "lora" and e.lora == "adapter"
        req = EvalRequest(model=e.backend, model_args=self.model_args(), tasks=tasks,
                          limit=e.limit, num_fewshot=e.num_fewshot, batch_size=e.batch_size,
                          output_path=str(folder / "lm_eval"), log_samples=True,
                          gen_kwargs=f"max_gen_toks={e.max_gen_toks}", metadata=e.metadata,
                          bootstrap_iters=0,  # the protocol's own paired bootstrap gives the intervals
                          shared_engine=adapter and e.backend == "vllm",  # one engine per base, not per student
                          log_file=str(self.log) if self.log else None)
        with torch_threads(self.threads()):
            results = run_eval(req)
        samples = {t: str(next((folder / "lm_eval").rglob(f"samples_{t}_*.jsonl")).relative_to(folder))
                   for t in tasks}
        results_file = str(next((folder / "lm_eval").rglob("results_*.json")).relative_to(folder))
        return {"student": s.name, "student_key": s.key, "eval_key": self.key, "settings": eval_settings(self.cfg, tasks),
                "results_file": results_file, "samples_files": samples,
                "reported": {t: results["results"][t] for t in tasks},
                "task_versions": {t: results.get("versions", {}).get(t) for t in tasks},
                "lm_eval_version": results["regurg_bench"]["versions"].get("lm-eval"),
                "sacrebleu_signatures": results["regurg_bench"]["sacrebleu_signatures"],
                "test_set_fingerprints": results["regurg_bench"]["test_set_fingerprints"],
                "config": {k: results.get("config", {}).get(k) for k in ("model", "model_args", "limit", "gen_kwargs")}}


def eval_step(cfg: ProtocolConfig, s: Student, tasks: list[str], out: Path,
              students: dict[str, Student] | None = None) -> EvaluateStudent:
    """``students`` (all of the run's, by name) finds the student a continued one (M4) was trained from:
    with ``eval.lora: adapter`` its merged model is the adapter's base."""
    key = sha("eval", SCHEMA_VERSION, s.key, eval_settings(cfg, tasks))[:16]
    base = students[s.base_student] if s.base_student and students else None
    return EvaluateStudent(f"eval:{s.name}", out / "evals" / f"{s.name}-{key}", deps=(f"train:{s.name}",),
                           resources=Resources(cfg.resources.cpus, cfg.resources.gpus),
                           cfg=cfg, student=s, tasks=tuple(tasks), key=key, base_dir=base.dir if base else None,
                           log=out / RUN_LOG)
