"""What a protocol run trains: the students of the matrix, their fingerprints, and the plan before any data exist.

A student's key is the sha256 of everything that decides its weights: its split (and curriculum, forget set,
base student) file contents, the TrainConfig overrides, the resolved settings and its seed. The base
conditions (real, one REGURG per generator, fractions, mixes, size ladder) are planned here; each mitigation
adds its own students (:mod:`regurg_bench.protocol.mitigations`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regurg_bench.hashing import file_sha256, parts_sha256

#: Part of every step key: bump it when a step's output changes for the same inputs.
if TYPE_CHECKING:
    from regurg_bench.protocol.config import ProtocolConfig

SCHEMA_VERSION = 1


sha = parts_sha256  # the fingerprint of a step's inputs
file_sha = file_sha256


@dataclass
class Student:
    """One trained model of the matrix."""

    condition: str
    seed: int
    split: Path
    kind: str  # real | regurg | ladder | fraction | mix | a mitigation's kind (m1_order, m2_multigen, ...)
    generator: str | None = None  # the generator whose REGURG student is its baseline (None: every one)
    curriculum: Path | None = None
    forget: Path | None = None
    base_student: str | None = None  # name of the student it continues (M4)
    train_overrides: dict[str, Any] = field(default_factory=dict)
    size: int | None = None  # ladder rungs: training pairs
    key: str = ""
    dir: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.condition}-s{self.seed}"


def model_dir(folder: Path) -> Path:
    """Where a trained student's full model is: ``merged/`` for a LoRA student trained with ``merge_lora``
    (its own folder holds the adapter only, which vLLM cannot load as a model), else its folder."""
    merged = folder / "merged"
    return merged if (merged / "config.json").is_file() else folder


def student_key(cfg: ProtocolConfig, s: Student, base_key: str | None) -> str:
    return sha("student", SCHEMA_VERSION, {**cfg.train, **s.train_overrides}, cfg.resolved(), s.seed, file_sha(s.split),
               file_sha(s.curriculum) if s.curriculum else None, file_sha(s.forget) if s.forget else None,
               base_key)[:16]


def assign_keys(cfg: ProtocolConfig, out: Path, students: list[Student]) -> dict[str, Student]:
    """Key every student (base students come before the students that continue them) and name its folder."""
    by_name: dict[str, Student] = {}
    for s in students:
        base_key = by_name[s.base_student].key if s.base_student else None
        s.key = student_key(cfg, s, base_key)
        s.dir = out / "students" / f"{s.name}-{s.key}"
        by_name[s.name] = s
    return by_name


def base_students(cfg: ProtocolConfig, splits: Path, manifest: dict[str, Any], seed: int) -> list[Student]:
    """real, one REGURG per generator, then the builder's fractions, mixes and ladder rungs (canonical order)."""
    gens = list(cfg.build.generators)
    out = [Student("real", seed, splits / "real.jsonl", "real")]
    out += [Student(f"regurg_{g}", seed, splits / f"regurg_{g}.jsonl", "regurg", g) for g in gens]
    # a canonical order: a cached build's manifest may list its conditions in another order than a fresh
    # one, and the order shows in results.json (condition_order, claims)
    extra = sorted(manifest["conditions"].items(),
                   key=lambda kv: (kv[1]["kind"], str(kv[1].get("generator") or ""), kv[1].get("size") or 0, kv[0]))
    for name, info in extra:
        if info["kind"] == "fraction":
            out.append(Student(name, seed, splits / info["file"], "fraction"))
        elif info["kind"] == "mix" and 0.0 < info.get("ratio", 0.0) < 1.0:
            out.append(Student(name, seed, splits / info["file"], "mix", info["generator"]))
        elif info["kind"] == "ladder":
            out.append(Student(name, seed, splits / info["file"], "ladder", info["generator"], size=info["size"]))
    return out


def plan_students(cfg: ProtocolConfig, out: Path, manifest: dict[str, Any], derived: dict[str, Any]) -> list[Student]:
    """Every student of the run, seed by seed: the base conditions, then each mitigation's (registry order)."""
    from regurg_bench.protocol.mitigations import enabled_mitigations

    splits = out / "splits"
    mitigations = enabled_mitigations(cfg)
    students: list[Student] = []
    for seed in cfg.seeds:
        students += base_students(cfg, splits, manifest, seed)
        for g in cfg.mitigated_generators():
            for m in mitigations:
                if m.per_generator:
                    students += m.students(cfg, splits, derived, seed, g)
        for m in mitigations:
            if not m.per_generator:
                students += m.students(cfg, splits, derived, seed, None)
    return students


def planned_conditions(cfg: ProtocolConfig) -> list[str]:
    """The conditions the run will train, per seed, in the order it trains them (before any data exist)."""
    from regurg_bench.protocol.mitigations import enabled_mitigations

    gens = list(cfg.build.generators)
    # (kind, generator, size, name): sorted as base_students sorts the built conditions
    extra: list[tuple[str, str, float, str]] = [
        ("fraction", "", f, f"fraction_real_{round(f * 100):03d}") for f in cfg.build.fractions_of_real]
    if cfg.build.mixes:
        extra += [("mix", g, 0, f"mix_{g}_{round(r * 100):03d}") for g in (cfg.build.mixes.generators or gens)
                  for r in cfg.build.mixes.ratios if 0.0 < r < 1.0]
    if cfg.build.ladder:
        lad = cfg.build.ladder
        top = min(x for x in (lad.max, cfg.build.size) if x) if (lad.max or cfg.build.size) else None
        if top is None:
            extra.append(("ladder", "", 0, f"ladder_<every {lad.step} pairs up to the corpus size>"))
        else:
            for size in range(lad.step, top, lad.step):
                extra += [("ladder", "", size, f"ladder_real_{size}")]
                extra += [("ladder", g, size, f"ladder_regurg_{g}_{size}") for g in gens]
    conds = ["real"] + [f"regurg_{g}" for g in gens] + [name for *_, name in sorted(extra)]
    mitigations = enabled_mitigations(cfg)
    for g in cfg.mitigated_generators():
        conds += [c for m in mitigations if m.per_generator for c in m.planned_conditions(cfg, g)]
    conds += [c for m in mitigations if not m.per_generator for c in m.planned_conditions(cfg, None)]
    return conds


def eval_settings(cfg: ProtocolConfig, tasks: list[str]) -> dict[str, Any]:
    """What decides an evaluation's outputs besides the student (part of its key). For LoRA students it names
    the path (``lora``: merged checkpoint or adapter on its base), whose fp32 bits differ; full fine-tunes
    have no such choice and keep the keys they always had. Which other students share an engine is not
    here: it changes nothing an evaluation writes (tested)."""
    e = cfg.eval
    settings = {"backend": e.backend, "tasks": tasks, "limit": e.limit, "max_gen_toks": e.max_gen_toks,
                "dtype": e.dtype, "num_fewshot": e.num_fewshot, "metadata": e.metadata}
    if cfg.train.get("method") == "lora":
        settings["lora"] = e.lora
    return settings
