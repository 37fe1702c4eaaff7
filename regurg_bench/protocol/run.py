"""Run the protocol: build -> mitigation data -> train every student -> evaluate -> score -> report.

Caching. Each step writes into a folder named by a fingerprint of its inputs and marks completion
last (the builder's ``manifest.json``, the trainer's ``training_card.json``, our ``done.json``), so
a killed run resumes at the first unfinished step and a finished step is never redone:

- splits: the builder's own config hash (``splits/manifest.json``);
- derived data (M1-M4): sha256 of the input split files + the mitigation's settings;
- a student: sha256 of its split (and curriculum / forget / base student) file contents + the
  TrainConfig overrides + seed -> ``students/<condition>-s<seed>-<key>``;
- an evaluation: the student's key + eval settings -> ``evals/<condition>-s<seed>-<key>``;
- the run: the config hash (``run_done.json``), so re-running a finished run only reads one file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.corpora.lines import read_json_objects
from regurg_bench.protocol.config import ProtocolConfig

log = logging.getLogger(__name__)

DONE = "done.json"
RUN_DONE = "run_done.json"
SCHEMA_VERSION = 1


# ----------------------------------------------------------------------------------------- helpers
def _sha(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def file_sha(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_write(path) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_ids(path: Path, ids: list[str]) -> None:
    with atomic_write(path) as handle:
        handle.write("".join(f"{i}\n" for i in ids))


def _cached(folder: Path, make: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any], bool]:
    """Run ``make(folder)`` unless ``folder/done.json`` exists; return (its record, was_cached)."""
    done = folder / DONE
    if done.is_file():
        return json.loads(done.read_text(encoding="utf-8")), True
    folder.mkdir(parents=True, exist_ok=True)
    record = make(folder)
    _write_json(done, record)
    return record, False


class Timer:
    def __init__(self, say: Callable[[str], None]) -> None:
        self.stages: dict[str, float] = {}
        self.say = say

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


# ------------------------------------------------------------------------------------------ plan
@dataclass
class Student:
    """One trained model of the matrix."""

    condition: str
    seed: int
    split: Path
    kind: str  # real | regurg | ladder | fraction | mix | m1_order | m1_topk | m2_multigen | m3_detector | m4_unlearn
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


def model_dir(s: Student) -> Path:
    """Where a trained student's full model is: ``merged/`` for a LoRA student trained with ``merge_lora``
    (its own folder holds the adapter only, which vLLM cannot load as a model), else its folder."""
    merged = s.dir / "merged"
    return merged if (merged / "config.json").is_file() else s.dir


def student_key(cfg: ProtocolConfig, s: Student, base_key: str | None) -> str:
    return _sha("student", SCHEMA_VERSION, {**cfg.train, **s.train_overrides}, cfg.resolved(), s.seed, file_sha(s.split),
                file_sha(s.curriculum) if s.curriculum else None, file_sha(s.forget) if s.forget else None,
                base_key)[:16]


def eval_settings(cfg: ProtocolConfig, tasks: list[str]) -> dict[str, Any]:
    e = cfg.eval
    return {"backend": e.backend, "tasks": tasks, "limit": e.limit, "max_gen_toks": e.max_gen_toks,
            "dtype": e.dtype, "num_fewshot": e.num_fewshot, "metadata": e.metadata}


# ---------------------------------------------------------------------------------------- stages
def build_stage(cfg: ProtocolConfig, out: Path) -> dict[str, Any]:
    from regurg_bench.builders.build import build_splits
    from regurg_bench.builders.targets import make_target_generators

    if not cfg.build.generators:
        raise ValueError("build.generators is empty: the protocol needs at least one generator (REGURG)")
    gens = make_target_generators(cfg.build)
    try:
        return build_splits(cfg.build, out / "splits", gens, progress=False)
    finally:
        for g in gens.values():
            g.close()


def heldout_stage(cfg: ProtocolConfig, out: Path, main_ids: set[str]) -> dict[str, Any]:
    """Held-out sources (not in the training sample) with human and generated targets, for M3."""
    from regurg_bench.builders.build import build_splits
    from regurg_bench.builders.targets import make_target_generators

    n = cfg.mitigations.detector.heldout_pairs
    # A different sampling seed; the overlap with the training sample is dropped afterwards.
    hcfg = cfg.build.model_copy(update={
        "name": f"{cfg.build.name}-heldout", "seed": cfg.build.seed + 7919,
        "size": n + len(main_ids) // 5 + 50, "mixes": None, "ladder": None, "fractions_of_real": [],
        # only the generators M3 mitigates need targets for the held-out sources
        "generators": {g: cfg.build.generators[g] for g in cfg.mitigated_generators()},
        "recursive": None, "write_hf": False})
    gens = make_target_generators(hcfg)
    try:
        manifest = build_splits(hcfg, out / "heldout", gens, progress=False)
    finally:
        for g in gens.values():
            g.close()
    return manifest


def quality_stage(cfg: ProtocolConfig, out: Path, splits: Path, g: str) -> dict[str, Any]:
    """M1: quality of each generated pair -> curriculum (high -> low) and a top-fraction split."""
    q = cfg.mitigations.quality
    regurg = splits / f"regurg_{g}.jsonl"
    key = _sha("m1", SCHEMA_VERSION, file_sha(regurg), q.model_dump())[:16]

    def make(folder: Path) -> dict[str, Any]:
        from regurg_bench.metrics.quality import quality_signal

        rows = read_json_objects(regurg)
        signal = quality_signal([r["source"] for r in rows], [r["target"] for r in rows], q.qe_model)
        _write_jsonl(folder / "quality.jsonl", [{"id": r["id"], "quality": s} for r, s in zip(rows, signal.scores, strict=False)])
        ranked = sorted(zip(signal.scores, (r["id"] for r in rows), strict=False), key=lambda t: (-t[0], t[1]))
        _write_ids(folder / "curriculum.txt", [i for _, i in ranked])
        keep = {i for _, i in ranked[: max(1, round(q.top_fraction * len(rows)))]}
        _write_jsonl(folder / "topk.jsonl", [r | {"condition": f"m1_topk_{g}"} for r in rows if r["id"] in keep])
        return {"metric": signal.metric, "signature": signal.signature, "test_only": signal.test_only,
                "pairs": len(rows), "top_k": len(keep), "top_fraction": q.top_fraction,
                "mean_quality": sum(signal.scores) / len(signal.scores)}

    folder = out / "derived" / f"m1_{g}-{key}"
    record, _ = _cached(folder, make)
    return record | {"dir": str(folder)}


def multigen_stage(cfg: ProtocolConfig, out: Path, splits: Path, generators: list[str]) -> dict[str, Any]:
    """M2: every pair's target from one generator chosen by a keyed hash of its id (equal total size)."""
    files = [splits / f"regurg_{g}.jsonl" for g in generators]
    key = _sha("m2", SCHEMA_VERSION, [file_sha(f) for f in files], cfg.build.seed)[:16]

    def make(folder: Path) -> dict[str, Any]:
        by_gen = {g: {r["id"]: r for r in read_json_objects(f)} for g, f in zip(generators, files, strict=False)}
        ids = [r["id"] for r in read_json_objects(files[0])]
        counts = dict.fromkeys(generators, 0)
        rows = []
        for i in ids:
            g = generators[int(_sha("m2", cfg.build.seed, i)[:8], 16) % len(generators)]
            counts[g] += 1
            rows.append(by_gen[g][i] | {"condition": "m2_multigen"})
        _write_jsonl(folder / "multigen.jsonl", rows)
        return {"pairs": len(rows), "per_generator": counts}

    folder = out / "derived" / f"m2-{key}"
    record, _ = _cached(folder, make)
    return record | {"dir": str(folder)}


def detector_stage(cfg: ProtocolConfig, out: Path, splits: Path, heldout: Path, main_ids: set[str],
                   g: str) -> dict[str, Any]:
    """M3: char n-gram TF-IDF + logistic regression, human (1) vs generator ``g`` (0) targets of held-out
    sources; AUROC on a held-out part (split by source id); P(human) of each training pair."""
    d = cfg.mitigations.detector
    regurg = splits / f"regurg_{g}.jsonl"
    h_real, h_gen = heldout / "real.jsonl", heldout / f"regurg_{g}.jsonl"
    key = _sha("m3", SCHEMA_VERSION, file_sha(regurg), file_sha(h_real), file_sha(h_gen), d.model_dump())[:16]

    def make(folder: Path) -> dict[str, Any]:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score
        from sklearn.pipeline import make_pipeline

        human = [r for r in read_json_objects(h_real) if r["id"] not in main_ids][: d.heldout_pairs]
        keep = {r["id"] for r in human}
        gen = {r["id"]: r for r in read_json_objects(h_gen) if r["id"] in keep}
        is_test = {i: int(_sha("m3-test", i)[:8], 16) / 16**8 < d.test_fraction for i in keep}
        train_x, train_y, test_x, test_y = [], [], [], []
        for r in human:
            xs, ys = (test_x, test_y) if is_test[r["id"]] else (train_x, train_y)
            xs += [r["target"], gen[r["id"]]["target"]]
            ys += [1, 0]
        model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
                              LogisticRegression(C=4.0, max_iter=2000))
        model.fit(train_x, train_y)
        auroc = float(roc_auc_score(test_y, model.predict_proba(test_x)[:, 1]))
        rows = read_json_objects(regurg)
        p_human = model.predict_proba([r["target"] for r in rows])[:, 1].tolist()
        _write_jsonl(folder / "p_human.jsonl", [{"id": r["id"], "p_human": p} for r, p in zip(rows, p_human, strict=False)])
        ranked = sorted(zip(p_human, (r["id"] for r in rows), strict=False), key=lambda t: (-t[0], t[1]))
        _write_ids(folder / "curriculum.txt", [i for _, i in ranked])
        return {"classifier": "TfidfVectorizer(char_wb, 2-4, min_df=2, sublinear_tf) + LogisticRegression(C=4)",
                "auroc": auroc, "heldout_sources": len(human), "train_texts": len(train_x),
                "test_texts": len(test_x), "mean_p_human_training_pairs": sum(p_human) / len(p_human)}

    folder = out / "derived" / f"m3_{g}-{key}"
    record, _ = _cached(folder, make)
    return record | {"dir": str(folder)}


def unlearning_stage(cfg: ProtocolConfig, out: Path, splits: Path, g: str, ranking: Path, by: str) -> dict[str, Any]:
    """M4 data: forget = the least human-like ``forget_fraction`` of the regurg pairs (by P(human), or
    by quality when the detector is off), replay = the rest of the regurg split."""
    u = cfg.mitigations.unlearning
    regurg = splits / f"regurg_{g}.jsonl"
    key = _sha("m4", SCHEMA_VERSION, file_sha(regurg), file_sha(ranking), u.forget_fraction)[:16]

    def make(folder: Path) -> dict[str, Any]:
        order = [line.strip() for line in ranking.read_text(encoding="utf-8").splitlines() if line.strip()]
        n_forget = max(1, round(u.forget_fraction * len(order)))
        forget_ids = set(order[-n_forget:])  # the ranking is best first
        rows = read_json_objects(regurg)
        _write_jsonl(folder / "forget.jsonl", [r for r in rows if r["id"] in forget_ids])
        _write_jsonl(folder / "replay.jsonl", [r | {"condition": f"m4_unlearn_{g}"} for r in rows
                                               if r["id"] not in forget_ids])
        return {"forget_pairs": len(forget_ids), "replay_pairs": len(rows) - len(forget_ids), "ranked_by": by}

    folder = out / "derived" / f"m4_{g}-{key}"
    record, _ = _cached(folder, make)
    return record | {"dir": str(folder)}


def diagnostics_stage(cfg: ProtocolConfig, out: Path, splits: Path) -> dict[str, Any]:
    """Diagnostics of the training splits (human vs each generator): error proxies, diversity, uniformity."""
    files = [splits / "real.jsonl"] + [splits / f"regurg_{g}.jsonl" for g in cfg.build.generators]
    key = _sha("diagnostics", SCHEMA_VERSION, [file_sha(f) for f in files])[:16]

    def make(folder: Path) -> dict[str, Any]:
        from regurg_bench.diagnostics.runner import diagnose

        report = diagnose(splits, label="training splits")
        report.write_json(folder / "diagnostics.json")
        report.plot(folder / "diagnostics.png")
        return {"stats": {k: {"label": info.get("label", k), "family": info.get("family"),
                              "better": info.get("better"),
                              "values": {c: report.value(c, k) for c in report.conditions}}
                          for k, info in report.stat_info.items() if info.get("key")},
                "n_pairs": report.n_pairs, "token_budget": report.token_budget, "notes": report.notes}

    folder = out / "derived" / f"diagnostics-{key}"
    record, _ = _cached(folder, make)
    rel = folder.relative_to(out).as_posix()
    return record | {"file": f"{rel}/diagnostics.json", "plot": f"{rel}/diagnostics.png"}


def train_student(cfg: ProtocolConfig, s: Student, students: dict[str, Student]) -> bool:
    """Train ``s`` into its fingerprinted folder; True when it was already there."""
    from regurg_bench.training import TrainConfig, train
    from regurg_bench.training.card import read_card

    if read_card(s.dir) is not None:
        return True
    overrides = {**cfg.train, **s.train_overrides}
    if s.base_student:
        overrides["base_model"] = str(model_dir(students[s.base_student]))
    tc = TrainConfig(split=str(s.split), out=str(s.dir), seed=s.seed, progress=False,
                     curriculum=str(s.curriculum) if s.curriculum else None,
                     forget=str(s.forget) if s.forget else None, **overrides)
    train(tc)
    return False


def eval_student(cfg: ProtocolConfig, s: Student, tasks: list[str], out: Path) -> tuple[dict[str, Any], bool]:
    settings = eval_settings(cfg, tasks)
    key = _sha("eval", SCHEMA_VERSION, s.key, settings)[:16]
    folder = out / "evals" / f"{s.name}-{key}"

    def make(folder: Path) -> dict[str, Any]:
        from regurg_bench.evaluation.runner import EvalRequest, run_eval

        # a partial earlier attempt may have left files: start clean
        for stale in folder.rglob("*.json*"):
            stale.unlink()
        e = cfg.eval
        dtype = e.dtype if e.backend == "hf" else ("auto" if e.dtype == "float32" else e.dtype)
        req = EvalRequest(model=e.backend, model_args=f"pretrained={model_dir(s)},dtype={dtype}", tasks=tasks,
                          limit=e.limit, num_fewshot=e.num_fewshot, batch_size=e.batch_size,
                          output_path=str(folder / "lm_eval"), log_samples=True,
                          gen_kwargs=f"max_gen_toks={e.max_gen_toks}", metadata=e.metadata,
                          bootstrap_iters=0)  # the protocol's own paired bootstrap gives the intervals
        results = run_eval(req)
        samples = {t: str(next((folder / "lm_eval").rglob(f"samples_{t}_*.jsonl")).relative_to(folder))
                   for t in tasks}
        results_file = str(next((folder / "lm_eval").rglob("results_*.json")).relative_to(folder))
        return {"student": s.name, "student_key": s.key, "eval_key": key, "settings": settings,
                "results_file": results_file, "samples_files": samples,
                "reported": {t: results["results"][t] for t in tasks},
                "task_versions": {t: results.get("versions", {}).get(t) for t in tasks},
                "lm_eval_version": results["regurg_bench"]["versions"].get("lm-eval"),
                "sacrebleu_signatures": results["regurg_bench"]["sacrebleu_signatures"],
                "test_set_fingerprints": results["regurg_bench"]["test_set_fingerprints"],
                "config": {k: results.get("config", {}).get(k) for k in ("model", "model_args", "limit", "gen_kwargs")}}

    record, cached = _cached(folder, make)
    return record | {"dir": str(folder)}, cached


# ------------------------------------------------------------------------------------- the runner
def plan_students(cfg: ProtocolConfig, out: Path, manifest: dict[str, Any], derived: dict[str, Any]) -> list[Student]:
    splits = out / "splits"
    gens = list(cfg.build.generators)
    base: list[Student] = []
    for seed in cfg.seeds:
        base.append(Student("real", seed, splits / "real.jsonl", "real"))
        for g in gens:
            base.append(Student(f"regurg_{g}", seed, splits / f"regurg_{g}.jsonl", "regurg", g))
        # a canonical order: a cached build's manifest may list its conditions in another order than a
        # fresh one, and the order shows in results.json (condition_order, claims)
        extra = sorted(manifest["conditions"].items(),
                       key=lambda kv: (kv[1]["kind"], str(kv[1].get("generator") or ""), kv[1].get("size") or 0, kv[0]))
        for name, info in extra:
            if info["kind"] == "fraction":
                base.append(Student(name, seed, splits / info["file"], "fraction"))
            elif info["kind"] == "mix" and 0.0 < info.get("ratio", 0.0) < 1.0:
                base.append(Student(name, seed, splits / info["file"], "mix", info["generator"]))
            elif info["kind"] == "ladder":
                base.append(Student(name, seed, splits / info["file"], "ladder", info["generator"],
                                    size=info["size"]))
        for g in gens:
            if f"m1_{g}" in derived:
                d = Path(derived[f"m1_{g}"]["dir"])
                base.append(Student(f"m1_order_{g}", seed, splits / f"regurg_{g}.jsonl", "m1_order", g,
                                    curriculum=d / "curriculum.txt"))
                base.append(Student(f"m1_topk_{g}", seed, d / "topk.jsonl", "m1_topk", g))
            if f"m3_{g}" in derived:
                d = Path(derived[f"m3_{g}"]["dir"])
                base.append(Student(f"m3_detector_{g}", seed, splits / f"regurg_{g}.jsonl", "m3_detector", g,
                                    curriculum=d / "curriculum.txt"))
            if f"m4_{g}" in derived:
                d = Path(derived[f"m4_{g}"]["dir"])
                u = cfg.mitigations.unlearning
                ov = {"max_steps": u.steps, "forget_weight": u.forget_weight, "epochs": 1.0}
                if u.lr is not None:
                    ov["lr"] = u.lr
                base.append(Student(f"m4_unlearn_{g}", seed, d / "replay.jsonl", "m4_unlearn", g,
                                    forget=d / "forget.jsonl", base_student=f"regurg_{g}-s{seed}",
                                    train_overrides=ov))
        if "m2" in derived:
            base.append(Student("m2_multigen", seed, Path(derived["m2"]["dir"]) / "multigen.jsonl", "m2_multigen"))
    return base


def _assign_keys(cfg: ProtocolConfig, out: Path, students: list[Student]) -> dict[str, Student]:
    by_name: dict[str, Student] = {}
    for s in students:  # base students come before the students that continue them
        base_key = by_name[s.base_student].key if s.base_student else None
        s.key = student_key(cfg, s, base_key)
        s.dir = out / "students" / f"{s.name}-{s.key}"
        by_name[s.name] = s
    return by_name


def _direction(splits: Path) -> tuple[str, str]:
    with open(splits / "real.jsonl", encoding="utf-8") as handle:
        row = json.loads(handle.readline())
    return row["src_lang"], row["tgt_lang"]


def run_protocol(cfg: ProtocolConfig, out: str | Path, *, dry_run: bool = False,
                 say: Callable[[str], None] = print, show_progress: bool = False) -> dict[str, Any]:
    """Run (or resume) the whole protocol into ``out``; return the results dict (results.json)."""
    from regurg_bench.protocol.config import check_config

    check_config(cfg)  # every config error before any work (a dry run included)
    out = Path(out)
    started = time.perf_counter()
    config_hash = cfg.config_hash()
    done = out / RUN_DONE
    if done.is_file() and not dry_run:
        record = json.loads(done.read_text(encoding="utf-8"))
        if record.get("config_hash") == config_hash and (out / "results.json").is_file():
            say(f"{out}: finished run with the same config ({config_hash[:19]}); nothing to do "
                f"({time.perf_counter() - started:.2f} s). Report: {out / 'report.md'}")
            return json.loads((out / "results.json").read_text(encoding="utf-8")) | {"up_to_date": True}
    if dry_run:
        return dry_run_plan(cfg, out, say)
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / "config.json", {"config": cfg.model_dump(mode="json"), "config_hash": config_hash,
                                      "resolved": cfg.resolved()})
    timer = Timer(say)
    progress = RunProgress(cfg, enabled=show_progress)
    say = progress.wrap(say)

    t = time.perf_counter()
    manifest = build_stage(cfg, out)
    timer.add("build", time.perf_counter() - t)
    progress.done("base model", "build")
    say(f"[build] {manifest['matched']} matched pairs, {len(manifest['conditions'])} conditions "
        f"({'cached' if manifest.get('up_to_date') else 'built'}, {time.perf_counter() - t:.1f} s)")
    splits = out / "splits"
    src, tgt = _direction(splits)
    tasks = cfg.eval.tasks or [f"regurg_mt_{src}-{tgt}"]
    main_ids = {r["id"] for r in read_json_objects(splits / "real.jsonl")}
    gens = list(cfg.build.generators)
    m = cfg.mitigations
    derived: dict[str, Any] = {}
    notes: list[str] = []

    t = time.perf_counter()
    mitigated = cfg.mitigated_generators()
    if m.quality.enabled:
        for g in mitigated:
            derived[f"m1_{g}"] = quality_stage(cfg, out, splits, g)
    timer.add("m1_quality", time.perf_counter() - t)
    t = time.perf_counter()
    if m.multi_generator:
        if len(gens) >= 2:
            derived["m2"] = multigen_stage(cfg, out, splits, gens)
        else:
            notes.append(f"M2 (multi-generator mix) skipped: it needs >= 2 generators, the config has {gens}.")
    if m.detector.enabled:
        heldout_stage(cfg, out, main_ids)
        for g in mitigated:
            derived[f"m3_{g}"] = detector_stage(cfg, out, splits, out / "heldout", main_ids, g)
            say(f"[m3] detector human-vs-{g}: AUROC {derived[f'm3_{g}']['auroc']:.3f} "
                f"on {derived[f'm3_{g}']['test_texts']} held-out texts")
    timer.add("m2_m3_data", time.perf_counter() - t)
    t = time.perf_counter()
    if m.unlearning.enabled:
        for g in mitigated:
            if f"m3_{g}" in derived:
                ranking, by = Path(derived[f"m3_{g}"]["dir"]) / "curriculum.txt", "detector P(human)"
            elif f"m1_{g}" in derived:
                ranking, by = Path(derived[f"m1_{g}"]["dir"]) / "curriculum.txt", "quality"
            else:
                notes.append("M4 skipped: it ranks pairs by the detector (M3) or quality (M1); both are off.")
                break
            derived[f"m4_{g}"] = unlearning_stage(cfg, out, splits, g, ranking, by)
    timer.add("m4_data", time.perf_counter() - t)

    t = time.perf_counter()
    diagnostics = diagnostics_stage(cfg, out, splits)
    timer.add("diagnostics", time.perf_counter() - t)
    progress.done("data")

    students = _assign_keys(cfg, out, plan_students(cfg, out, manifest, derived))
    for i, s in enumerate(students.values(), 1):
        t = time.perf_counter()
        cached = train_student(cfg, s, students)
        timer.add("train", time.perf_counter() - t)
        say(f"[train {i}/{len(students)}] {s.name}: {'cached' if cached else 'trained'} "
            f"({time.perf_counter() - t:.1f} s) -> {s.dir}")
        progress.done_item("train", s.name)
    evals: dict[str, Any] = {}
    for i, s in enumerate(students.values(), 1):
        t = time.perf_counter()
        evals[s.name], cached = eval_student(cfg, s, tasks, out)
        timer.add("eval", time.perf_counter() - t)
        say(f"[eval {i}/{len(students)}] {s.name}: {'cached' if cached else 'evaluated'} "
            f"({time.perf_counter() - t:.1f} s)")
        progress.done_item("eval", s.name)

    t = time.perf_counter()
    from regurg_bench.protocol.report import score_run, write_reports

    results = score_run(cfg, out, students, evals, tasks, derived, manifest, notes, diagnostics)
    timer.add("score", time.perf_counter() - t)
    t = time.perf_counter()
    results["timings_s"] = {k: round(v, 2) for k, v in timer.stages.items()}
    results["timings_s"]["total"] = round(time.perf_counter() - started, 2)
    write_reports(results, out)
    results["timings_s"]["report"] = round(time.perf_counter() - t, 2)
    _write_json(out / "results.json", results)  # again, with the report's own time
    _write_json(done, {"config_hash": config_hash, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    progress.close()
    say("stage times (s): " + ", ".join(f"{k} {v:.1f}" for k, v in results["timings_s"].items()))
    return results


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


def planned_conditions(cfg: ProtocolConfig) -> list[str]:
    """The conditions the run will train, per seed, in the order it trains them (before any data exist)."""
    gens = list(cfg.build.generators)
    m = cfg.mitigations
    conds = ["real"] + [f"regurg_{g}" for g in gens]
    conds += [f"fraction_real_{round(f * 100):03d}" for f in cfg.build.fractions_of_real]
    if cfg.build.mixes:
        conds += [f"mix_{g}_{round(r * 100):03d}" for g in (cfg.build.mixes.generators or gens)
                  for r in cfg.build.mixes.ratios if 0.0 < r < 1.0]
    if cfg.build.ladder:
        lad = cfg.build.ladder
        top = min(x for x in (lad.max, cfg.build.size) if x) if (lad.max or cfg.build.size) else None
        if top is None:
            conds.append(f"ladder_<every {lad.step} pairs up to the corpus size>")
        else:
            for size in range(lad.step, top, lad.step):
                conds += [f"ladder_real_{size}"] + [f"ladder_regurg_{g}_{size}" for g in gens]
    for g in cfg.mitigated_generators():
        conds += ([f"m1_order_{g}", f"m1_topk_{g}"] if m.quality.enabled else [])
        conds += [f"m3_detector_{g}"] if m.detector.enabled else []
        conds += [f"m4_unlearn_{g}"] if m.unlearning.enabled and (m.detector.enabled or m.quality.enabled) else []
    if m.multi_generator and len(gens) >= 2:
        conds.append("m2_multigen")
    return conds


def dry_run_plan(cfg: ProtocolConfig, out: Path, say: Callable[[str], None], *, estimate: bool = True) -> dict[str, Any]:
    """Print the steps without running anything (student folders are keyed once their data exist), and
    an estimate of the run's compute and duration on this machine from a short calibration."""
    gens = list(cfg.build.generators)
    m = cfg.mitigations
    conds = planned_conditions(cfg)
    status = "built" if (out / "splits" / "manifest.json").is_file() else "to build"
    say(f"config {cfg.config_hash()[:19]} -> {out}")
    say(f"1. build splits ({cfg.build.corpus}, {cfg.build.size} pairs, generators {gens}): {status}")
    say("2. mitigation data: " + ", ".join(x for x, on in (("M1 quality", m.quality.enabled),
                                                          ("M2 multi-generator", m.multi_generator and len(gens) > 1),
                                                          ("M3 detector", m.detector.enabled),
                                                          ("M4 unlearning sets", m.unlearning.enabled)) if on))
    students = [f"{c}-s{s}" for s in cfg.seeds for c in conds]
    budget = (f"{cfg.train['max_steps']} steps" if cfg.train.get("max_steps")
              else f"{cfg.train.get('epochs', 1.0)} epochs")
    method = cfg.train.get("method", "full")
    say(f"3. train {len(students)} students = {len(conds)} conditions x seeds {cfg.seeds} "
        f"({cfg.train.get('base_model', 'scratch:tiny')}, {method}, {budget} each): {', '.join(conds)}")
    say(f"4. evaluate each with {cfg.eval.backend} on {cfg.eval.tasks or 'regurg_mt_<src>-<tgt>'} "
        f"(limit {cfg.eval.limit}, max_gen_toks {cfg.eval.max_gen_toks})")
    say(f"5. score {cfg.scoring.metrics} ({cfg.scoring.resamples} paired bootstrap resamples) and "
        "write results.json, report.md, report.html and the plots")
    plan: dict[str, Any] = {"dry_run": True, "students": students, "config_hash": cfg.config_hash()}
    if estimate:
        from regurg_bench.protocol.estimate import plan_work, summarise

        est = summarise(plan_work(cfg, conds), _calibration(cfg))
        cal = est["calibration"]
        say("estimate (from an empty run folder; cached steps cost nothing): "
            + ", ".join(f"{k} {v['seconds'] / 60:.1f} min" for k, v in est["stages"].items())
            + f"; total ~{est['seconds'] / 60:.0f} min, {est['tflop']:.1f} TFLOP of model compute")
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


def finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
