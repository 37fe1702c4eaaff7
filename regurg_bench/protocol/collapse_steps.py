"""The collapse study's generations as protocol steps (:mod:`regurg_bench.protocol.steps`), so the dry run
lists them, the progress bar's ETA counts them and any executor runs them: on Ray the chains of different
modes and seeds run side by side, since generation k of a chain waits for nothing but its own generation k-1.

Per seed, generation 0 is the main matrix's REAL student (the same training file, settings and seed: the same
student, trained and evaluated once). Then for k = 1..G and each mode:

- ``collapse:targets:<cond>-s<seed>``: the generation k-1 student decodes every real source greedily
  (generation 1 has one teacher for every mode, so its targets are one step, ``gen1-s<seed>``);
- ``collapse:data:<cond>-s<seed>``: the training file of generation k (replace / accumulate / accumulate_equal);
- ``collapse:train:<cond>-s<seed>`` and ``collapse:eval:<cond>-s<seed>``: the student and its evaluation.

Every folder is named by a fingerprint of its inputs' fingerprints (the real split's sha256, the teacher's key,
the settings), so all of them are known before any of them runs, as for the main matrix; the marker written last
makes a killed run resume at the first unfinished step with identical outputs. The sha256 of each teacher's
weights is still recorded with the targets it wrote (provenance).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from regurg_bench.corpora.lines import read_json_objects
from regurg_bench.protocol.plan import Student, eval_settings, file_sha, model_dir, sha
from regurg_bench.protocol.steps import RUN_LOG, EvaluateStudent, Resources, Step, TrainStudent, write_jsonl
from regurg_bench.scoring.generations import ACCUMULATING, GEN0

if TYPE_CHECKING:
    from regurg_bench.protocol.config import ProtocolConfig

#: part of every collapse step key (2: keys chain on the inputs' keys, generation 0 is the REAL student)
SCHEMA_VERSION = 2


def condition(mode: str, k: int) -> str:
    return GEN0 if k == 0 else f"{mode}_gen{k}"


def targets_name(mode: str, k: int, seed: int) -> str:
    """Generation 1's targets are shared by every mode (one teacher: generation 0)."""
    return f"gen1-s{seed}" if k == 1 else f"{condition(mode, k)}-s{seed}"


def chain_order(cfg: ProtocolConfig) -> list[tuple[int, int, str]]:
    """(seed, k, mode) of every collapse student after generation 0, in the order a local run makes them."""
    assert cfg.collapse is not None
    return [(seed, k, mode) for seed in cfg.seeds for k in range(1, cfg.collapse.generations + 1)
            for mode in cfg.collapse.modes]


def planned_collapse_steps(cfg: ProtocolConfig) -> list[str]:
    """The collapse steps' names in executed order (known before any data exist: the dry run lists them)."""
    names: list[str] = []
    for seed, k, mode in chain_order(cfg):
        student = f"{condition(mode, k)}-s{seed}"
        targets = f"collapse:targets:{targets_name(mode, k, seed)}"
        names += [t for t in (targets,) if t not in names]
        names += [f"collapse:data:{student}", f"collapse:train:{student}", f"collapse:eval:{student}"]
    return names


@dataclass
class ChainStudent:
    """One student of a chain: generation ``k`` of ``mode`` for ``seed`` (generation 0: the REAL student)."""

    mode: str
    k: int
    seed: int
    split: Path
    key: str
    dir: Path

    @property
    def condition(self) -> str:
        return condition(self.mode, self.k)

    @property
    def name(self) -> str:
        return f"{self.condition}-s{self.seed}"

    def as_student(self) -> Student:
        return Student(self.condition, self.seed, self.split, "collapse", key=self.key, dir=self.dir)


def generation_settings(cfg: ProtocolConfig) -> dict[str, Any]:
    c = cfg.collapse
    assert c is not None
    return {"max_new_tokens": c.max_new_tokens, "batch_size": c.batch_size, "dtype": "float32",
            "num_threads": cfg.train.get("num_threads")}


def model_sha(model_dir_: str | Path) -> str:
    """The identity of a trained student: sha256 over its weight files (names and contents)."""
    files = sorted(Path(model_dir_).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir_}: no *.safetensors weights")
    return sha([(p.name, file_sha(p)) for p in files])


# ------------------------------------------------------------------------------------------ steps
@dataclass
class DecodeTargets(Step):
    """Generation k's targets: the teacher (a generation k-1 student) decodes every real source greedily;
    failed or empty outputs are dropped and counted, never used. Kill-safe: a killed decoding resumes from the
    batches already committed to the run's generation cache."""

    cfg: ProtocolConfig | None = None
    real_file: Path | None = None
    teacher: ChainStudent | None = None
    k: int = 1
    stage: ClassVar[str] = "collapse_generate"

    def run(self) -> dict[str, Any]:
        from regurg_bench.corpora.base import Pair
        from regurg_bench.generation.base import build_generator
        from regurg_bench.generation.cache import GenerationCache
        from regurg_bench.generation.runner import generate_targets

        assert self.cfg is not None and self.real_file is not None and self.teacher is not None
        settings, teacher = generation_settings(self.cfg), self.teacher
        weights = model_dir(teacher.dir)
        teacher_sha = model_sha(weights)
        pairs = [Pair(r["id"], r["source"], r["target"], r["src_lang"], r["tgt_lang"])
                 for r in read_json_objects(self.real_file)]
        generator = build_generator("transformers", model=str(weights),
                                    **{k: v for k, v in settings.items() if v is not None})
        cache = GenerationCache(self.folder.parent.parent / "generation-cache")
        try:
            results = list(generate_targets(generator, pairs, cache, batch_size=settings["batch_size"],
                                            progress=False))
        finally:
            generator.close()
        kept = [{"id": p.id, "source": p.source, "target": r.target, "src_lang": p.src_lang,
                 "tgt_lang": p.tgt_lang, "origin": f"gen{self.k}", "teacher": teacher.name,
                 "teacher_model_sha": teacher_sha} for p, r in results if r.ok]
        write_jsonl(self.folder / "targets.jsonl", kept)
        return {"generation": self.k, "teacher": teacher.name, "teacher_model_sha": teacher_sha,
                "teacher_key": teacher.key, "settings": settings, "pairs": len(kept),
                "dropped_failed_generation": len(results) - len(kept)}

    def output(self, record: dict[str, Any]) -> dict[str, Any]:
        return record | {"dir": str(self.folder), "file": str(self.folder / "targets.jsonl")}

    def message(self, record: dict[str, Any]) -> str | None:
        return (f"[collapse targets] {self.name.removeprefix('collapse:targets:')} by {record['teacher']}: "
                f"{record['pairs']} pairs")


@dataclass
class TrainingFile(Step):
    """The training file of generation k of ``mode`` (``generated``: this chain's target files 1..k)."""

    real_file: Path | None = None
    generated: tuple[Path, ...] = ()
    mode: str = "replace"
    k: int = 1
    seed: int = 0
    stage: ClassVar[str] = "collapse_data"

    def run(self) -> dict[str, Any]:
        assert self.real_file is not None
        mode, k, seed, cond = self.mode, self.k, self.seed, condition(self.mode, self.k)
        real = read_json_objects(self.real_file)
        if mode == "replace":
            rows = [r | {"condition": cond} for r in read_json_objects(self.generated[-1])]
        else:
            rows = [r | {"origin": "human", "condition": cond} for r in real]
            for j, path in enumerate(self.generated, 1):
                rows += [r | {"id": f"{r['id']}#gen{j}", "condition": cond} for r in read_json_objects(path)]
            if mode == "accumulate_equal":
                # a seeded subsample as large as the real split: keyed hash of (seed, k, id), never order
                rows.sort(key=lambda r: sha("collapse-equal", seed, k, r["id"]))
                rows = rows[:len(real)]
                rows.sort(key=lambda r: r["id"])
        if mode == "replace" and not rows:
            raise ValueError(f"collapse: generation {k - 1} decoded none of the {len(real)} training sources into "
                             f"a usable target, so replace generation {k} (seed {seed}) has nothing to train on; "
                             "use fewer generations or a stronger base model")
        write_jsonl(self.folder / "train.jsonl", rows)
        inputs = [self.real_file, *self.generated] if mode in ACCUMULATING else [self.generated[-1]]
        return {"mode": mode, "generation": k, "pairs": len(rows),
                "human_pairs": sum(r.get("origin") == "human" for r in rows),
                "inputs": [file_sha(p) for p in inputs]}

    def output(self, record: dict[str, Any]) -> dict[str, Any]:
        return record | {"dir": str(self.folder), "file": str(self.folder / "train.jsonl")}


@dataclass
class TrainChainStudent(TrainStudent):
    stage: ClassVar[str] = "collapse_train"


@dataclass
class EvaluateChainStudent(EvaluateStudent):
    stage: ClassVar[str] = "collapse_eval"


# ------------------------------------------------------------------------------------------- plan
@dataclass
class CollapsePlan:
    """Every collapse step of a run (executed order) and the chain students they make."""

    steps: list[Step]
    students: dict[str, ChainStudent]  # by name, generation 0 included
    evals: dict[str, str]  # student name -> the step that evaluates it


def plan_collapse(cfg: ProtocolConfig, out: Path, tasks: list[str], real: dict[str, Student]) -> CollapsePlan:
    """The steps of every chain. ``real``: the main matrix's students by name (its ``real-s<seed>`` are
    generation 0, already trained and evaluated by the matrix)."""
    assert cfg.collapse is not None
    real_file = out / "splits" / "real.jsonl"
    real_sha = file_sha(real_file)
    gen_key = sha("collapse-targets", SCHEMA_VERSION, real_sha, generation_settings(cfg))
    res = Resources(cfg.resources.cpus, cfg.resources.gpus)
    root = out / "collapse"
    students: dict[str, ChainStudent] = {}
    trains: dict[str, str] = {}  # student name -> the step that trains it
    evals: dict[str, str] = {}
    for seed in cfg.seeds:
        r = real[f"real-s{seed}"]
        g0 = ChainStudent(GEN0, 0, seed, r.split, r.key, r.dir)
        students[g0.name], trains[g0.name], evals[g0.name] = g0, f"train:{r.name}", f"eval:{r.name}"
    steps: list[Step] = []
    targets: dict[str, DecodeTargets] = {}
    chain_targets: dict[tuple[str, int], list[DecodeTargets]] = {}
    for seed, k, mode in chain_order(cfg):
        teacher = students[f"{condition(mode, k - 1)}-s{seed}"]
        tname = f"collapse:targets:{targets_name(mode, k, seed)}"
        if tname not in targets:
            key = sha(gen_key, teacher.key)[:16]
            targets[tname] = DecodeTargets(tname, root / "targets" / f"gen{k}-s{seed}-{key}",
                                           deps=(trains[teacher.name],),
                                           resources=res, cfg=cfg, real_file=real_file, teacher=teacher, k=k)
            steps.append(targets[tname])
        chain = chain_targets.setdefault((mode, seed), [])
        chain.append(targets[tname])
        inputs = [real_sha, *(t.folder.name for t in chain)] if mode in ACCUMULATING else [chain[-1].folder.name]
        data_key = sha("collapse-data", SCHEMA_VERSION, mode, k, seed, inputs)[:16]
        name = f"{condition(mode, k)}-s{seed}"
        data = TrainingFile(f"collapse:data:{name}", root / "data" / f"{mode}-gen{k}-s{seed}-{data_key}",
                            deps=tuple(t.name for t in chain), real_file=real_file,
                            generated=tuple(t.folder / "targets.jsonl" for t in chain), mode=mode, k=k, seed=seed)
        key = sha("collapse-student", SCHEMA_VERSION, cfg.train, cfg.resolved(), seed, data_key)[:16]
        s = ChainStudent(mode, k, seed, data.folder / "train.jsonl", key, root / "students" / f"{name}-{key}")
        students[name] = s
        train = TrainChainStudent(f"collapse:train:{name}", s.dir, deps=(data.name,), resources=res, cfg=cfg,
                                  student=s.as_student())
        eval_key = sha("collapse-eval", SCHEMA_VERSION, key, eval_settings(cfg, tasks))[:16]
        ev = EvaluateChainStudent(f"collapse:eval:{name}", root / "evals" / f"{name}-{eval_key}", deps=(train.name,),
                                  resources=res, cfg=cfg, student=s.as_student(), tasks=tuple(tasks), key=eval_key,
                                  log=out / RUN_LOG)
        trains[name], evals[name] = train.name, ev.name
        steps += [data, train, ev]
    return CollapsePlan(steps, students, evals)
