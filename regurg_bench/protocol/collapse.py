"""Degradation across generations: does training on a model's own outputs, again and again, collapse it?

The paper measures one generation of regurgitation. The model-collapse literature repeats it:
Shumailov et al. ("The Curse of Recursion", 2024) train each generation on the previous generation's
outputs only and see the tails of the distribution vanish and the error grow; Gerstgrasser et al. ("Is
Model Collapse Inevitable?", 2024) *accumulate* real and generated data instead and see the error stay
bounded. This module runs both on the protocol's own data, students and scoring:

- generation 0: a student trained on the real split (``splits/real.jsonl``), from the run's base model;
- the student of generation k decodes the same training sources greedily; those outputs are the
  targets of generation k+1 (failed or empty outputs are dropped and counted, never used);
- ``replace``: generation k+1 trains on those targets only;
- ``accumulate``: on the real pairs plus every generated set of its own chain so far (ids
  ``<id>#gen<j>``), so the training set grows;
- ``accumulate_equal``: on a seeded subsample of that pool as large as the real split, so the
  comparison with ``replace`` is not just "more data";
- every student starts from ``train.base_model`` (the pretrained base) with ``train`` settings, one
  chain per seed, and is evaluated with the run's ``eval`` settings.

Scores: D_k = degradation of generation k against generation 0 (:func:`regurg_bench.scoring.degradation`)
per mode and metric, from one paired bootstrap over test sentences and seeds shared by every condition;
"degradation grows with k" = the paired difference generation 1 vs G; "accumulate stays bounded" = the
paired difference accumulate vs replace at generation G. Diagnostics of each generation's targets
against the human ones (equal token budget) and the share of the human vocabulary's tail and head that
the generated targets keep.

Caching, as the rest of the protocol: every step's folder is named by a hash of its inputs, and a
completion marker is written last (``done.json``, the trainer's card), so a killed run resumes with
identical curves. The hashes chain: a generation's targets are keyed by the sha256 of the teacher
student's weights, its training file by the sha256 of its input files, its student by the sha256 of
its training file, its evaluation by the student's key.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regurg_bench.corpora.lines import read_json_objects

# the protocol's cache helpers (fingerprints, atomic JSON writes, the step cache with its lock): one home
from regurg_bench.protocol.plan import eval_settings, file_sha
from regurg_bench.protocol.plan import sha as _sha
from regurg_bench.protocol.steps import cached as _cached
from regurg_bench.protocol.steps import write_json as _write_json
from regurg_bench.protocol.steps import write_jsonl as _write_jsonl

SCHEMA_VERSION = 1
GEN0 = "gen0"
ACCUMULATING = ("accumulate", "accumulate_equal")
#: diagnostics statistics shown in the report and the diversity plot (when computed)
DIVERSITY_KEYS = ("types_at_budget", "distinct_1", "distinct_2", "mtld")
ERROR_KEYS = ("chrf_mean", "ter_mean", "ratio_outlier_rate", "wrong_language_rate", "within_repeat_rate")
CLAIM_TEXT = {
    "collapse_growth": "Degradation grows with the generation under {mode}: D_G - D_1 > 0 (paired difference, generation 1 vs G)",
    "collapse_bounded": "Accumulating keeps degradation below replacing at the last generation: D_G(replace) - D_G({mode}) > 0",
    "collapse_tail": "The tail of the vocabulary disappears first under {mode}: generated targets keep a smaller share "
                     "of the human tail types than of the head types at every generation",
}


# ----------------------------------------------------------------------------------------- helpers
def model_sha(model_dir: str | Path) -> str:
    """The identity of a trained student: sha256 over its weight files (names and contents)."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights")
    return _sha([(p.name, file_sha(p)) for p in files])


def condition(mode: str, k: int) -> str:
    return GEN0 if k == 0 else f"{mode}_gen{k}"


@dataclass
class ChainStudent:
    """One student of a chain: generation ``k`` of ``mode`` for ``seed`` (generation 0 is shared)."""

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


# ------------------------------------------------------------------------------------------ steps
def _train(cfg, split: Path, seed: int, mode: str, k: int, out: Path) -> tuple[ChainStudent, bool]:
    """Train (or find) the student of ``split``; folder keyed by the file's sha256 + train settings + seed."""
    from regurg_bench.training import TrainConfig, train
    from regurg_bench.training.card import read_card

    key = _sha("collapse-student", SCHEMA_VERSION, cfg.train, cfg.resolved(), seed, file_sha(split))[:16]
    s = ChainStudent(mode, k, seed, split, key, out / "collapse" / "students" / f"{condition(mode, k)}-s{seed}-{key}")
    if read_card(s.dir) is not None:  # the trainer writes its card last
        return s, True
    train(TrainConfig(split=str(split), out=str(s.dir), seed=seed, progress=False, **cfg.train))
    return s, False


def _targets(cfg, out: Path, real_file: Path, teacher: ChainStudent, k: int) -> tuple[dict[str, Any], bool]:
    """Generation ``k``'s targets: the teacher (a generation k-1 student) decodes every real source greedily."""
    c = cfg.collapse
    gen_settings = {"max_new_tokens": c.max_new_tokens, "batch_size": c.batch_size, "dtype": "float32",
                    "num_threads": cfg.train.get("num_threads")}
    teacher_sha = model_sha(teacher.dir)
    key = _sha("collapse-targets", SCHEMA_VERSION, file_sha(real_file), teacher_sha, gen_settings)[:16]
    # generation 1 has one teacher (generation 0) for every mode: the folder is shared
    folder = out / "collapse" / "targets" / f"gen{k}-s{teacher.seed}-{key}"

    def make(folder: Path) -> dict[str, Any]:
        from regurg_bench.corpora.base import Pair
        from regurg_bench.generation.base import build_generator
        from regurg_bench.generation.cache import GenerationCache
        from regurg_bench.generation.runner import generate_targets

        rows = read_json_objects(real_file)
        pairs = [Pair(r["id"], r["source"], r["target"], r["src_lang"], r["tgt_lang"]) for r in rows]
        generator = build_generator("transformers", model=str(teacher.dir),
                                    **{k2: v for k2, v in gen_settings.items() if v is not None})
        # kill-safe: a killed generation resumes from the batches already committed
        cache = GenerationCache(out / "collapse" / "generation-cache")
        try:
            results = list(generate_targets(generator, pairs, cache, batch_size=c.batch_size, progress=False))
        finally:
            generator.close()
        kept = [{"id": p.id, "source": p.source, "target": r.target, "src_lang": p.src_lang,
                 "tgt_lang": p.tgt_lang, "origin": f"gen{k}", "teacher": teacher.name,
                 "teacher_model_sha": teacher_sha} for p, r in results if r.ok]
        _write_jsonl(folder / "targets.jsonl", kept)
        return {"generation": k, "teacher": teacher.name, "teacher_model_sha": teacher_sha,
                "teacher_key": teacher.key, "settings": gen_settings, "pairs": len(kept),
                "dropped_failed_generation": len(results) - len(kept)}

    record, cached = _cached(folder, make)
    return record | {"dir": str(folder), "file": str(folder / "targets.jsonl")}, cached


def _training_file(cfg, out: Path, mode: str, k: int, seed: int, real_file: Path,
                   generated: list[Path]) -> Path:
    """The training file of generation ``k`` of ``mode`` (``generated``: this chain's targets 1..k)."""
    inputs = [real_file, *generated] if mode in ACCUMULATING else [generated[-1]]
    key = _sha("collapse-data", SCHEMA_VERSION, mode, k, seed, [file_sha(p) for p in inputs])[:16]
    folder = out / "collapse" / "data" / f"{mode}-gen{k}-s{seed}-{key}"

    def make(folder: Path) -> dict[str, Any]:
        real = read_json_objects(real_file)
        if mode == "replace":
            rows = [r | {"condition": condition(mode, k)} for r in read_json_objects(generated[-1])]
        else:
            rows = [r | {"origin": "human", "condition": condition(mode, k)} for r in real]
            for j, path in enumerate(generated, 1):
                rows += [r | {"id": f"{r['id']}#gen{j}", "condition": condition(mode, k)}
                         for r in read_json_objects(path)]
            if mode == "accumulate_equal":
                # a seeded subsample as large as the real split: keyed hash of (seed, k, id), never order
                rows.sort(key=lambda r: _sha("collapse-equal", seed, k, r["id"]))
                rows = rows[:len(real)]
                rows.sort(key=lambda r: r["id"])
        _write_jsonl(folder / "train.jsonl", rows)
        return {"mode": mode, "generation": k, "pairs": len(rows),
                "human_pairs": sum(r.get("origin") == "human" for r in rows),
                "inputs": [file_sha(p) for p in inputs]}

    _cached(folder, make)
    return folder / "train.jsonl"


def _evaluate(cfg, out: Path, s: ChainStudent, tasks: list[str]) -> tuple[dict[str, Any], bool]:
    """The student on the run's tasks with the run's eval settings (lm-eval, samples logged)."""
    settings = eval_settings(cfg, tasks)
    key = _sha("collapse-eval", SCHEMA_VERSION, s.key, settings)[:16]
    folder = out / "collapse" / "evals" / f"{s.name}-{key}"

    def make(folder: Path) -> dict[str, Any]:
        from regurg_bench.evaluation.runner import EvalRequest, run_eval
        from regurg_bench.protocol.steps import RUN_LOG

        for stale in folder.rglob("*.json*"):  # a killed earlier attempt may have left files
            stale.unlink()
        e = cfg.eval
        dtype = e.dtype if e.backend == "hf" else ("auto" if e.dtype == "float32" else e.dtype)
        run_eval(EvalRequest(model=e.backend, model_args=f"pretrained={s.dir},dtype={dtype}", tasks=tasks,
                             limit=e.limit, num_fewshot=e.num_fewshot, batch_size=e.batch_size,
                             output_path=str(folder / "lm_eval"), log_samples=True,
                             gen_kwargs=f"max_gen_toks={e.max_gen_toks}", metadata=e.metadata,
                             bootstrap_iters=0, log_file=str(out / RUN_LOG)))
        samples = {t: next((folder / "lm_eval").rglob(f"samples_{t}_*.jsonl")).relative_to(folder).as_posix()
                   for t in tasks}
        return {"student": s.name, "student_key": s.key, "eval_key": key, "settings": settings,
                "samples_files": samples}

    record, cached = _cached(folder, make)
    return record | {"dir": str(folder)}, cached


# ------------------------------------------------------------------------------------------ chain
def run_chains(cfg, out: Path, tasks: list[str], say: Callable[[str], None] = print,
               timer: Any = None) -> dict[str, Any]:
    """Train, decode and evaluate every generation of every mode and seed (cached step by step)."""
    c = cfg.collapse
    real_file = out / "splits" / "real.jsonl"
    students: dict[str, ChainStudent] = {}
    evals: dict[str, dict[str, Any]] = {}
    targets: dict[str, dict[str, Any]] = {}  # "<mode>_gen<k>-s<seed>" -> record
    data: dict[str, str] = {}

    def timed(stage: str, fn: Callable[..., Any], *args: Any) -> Any:
        t = time.perf_counter()
        result = fn(*args)
        if timer is not None:
            timer.add(stage, time.perf_counter() - t)
        return result, time.perf_counter() - t

    def add(s: ChainStudent, cached: bool, seconds: float) -> None:
        students[s.name] = s
        say(f"[collapse train] {s.name}: {'cached' if cached else 'trained'} ({seconds:.1f} s) -> {s.dir}")
        (rec, was), secs = timed("collapse_eval", _evaluate, cfg, out, s, tasks)
        evals[s.name] = rec
        say(f"[collapse eval] {s.name}: {'cached' if was else 'evaluated'} ({secs:.1f} s)")

    for seed in cfg.seeds:
        (g0, cached), secs = timed("collapse_train", _train, cfg, real_file, seed, GEN0, 0, out)
        add(g0, cached, secs)
        teacher = dict.fromkeys(c.modes, g0)
        generated: dict[str, list[Path]] = {m: [] for m in c.modes}
        for k in range(1, c.generations + 1):
            for mode in c.modes:
                (rec, was), secs = timed("collapse_generate", _targets, cfg, out, real_file, teacher[mode], k)
                targets[f"{condition(mode, k)}-s{seed}"] = rec
                say(f"[collapse targets] {condition(mode, k)}-s{seed} by {teacher[mode].name}: "
                    f"{'cached' if was else 'generated'} ({secs:.1f} s, {rec['pairs']} pairs)")
                if mode == "replace" and rec["pairs"] == 0:
                    raise ValueError(f"collapse: {teacher[mode].name} decoded none of the {rec['dropped_failed_generation']} "
                                     f"training sources into a usable target, so replace generation {k} (seed {seed}) "
                                     "has nothing to train on; use fewer generations or a stronger base model")
                generated[mode].append(Path(rec["file"]))
                split = _training_file(cfg, out, mode, k, seed, real_file, generated[mode])
                data[f"{condition(mode, k)}-s{seed}"] = str(split)
                (s, cached), secs = timed("collapse_train", _train, cfg, split, seed, mode, k, out)
                add(s, cached, secs)
                teacher[mode] = s
    return {"students": students, "evals": evals, "targets": targets, "data": data}


# ---------------------------------------------------------------------------------------- scoring
def _tail_head(cfg, real_rows: list[dict[str, Any]]) -> tuple[set[str], set[str]]:
    from regurg_bench.diagnostics import words

    counts = Counter(w for r in real_rows for w in words(r["target"]))
    c = cfg.collapse
    return ({w for w, n in counts.items() if n <= c.tail_max_count},
            {w for w, n in counts.items() if n >= c.head_min_count})


def diagnostics_per_generation(cfg, out: Path, chains: dict[str, Any]) -> dict[str, Any]:
    """Per seed: every generation's targets against the human targets of the same ids, diversity at one
    token budget for all of them (the smallest non-empty condition's token count, over every seed), and
    the share of the human vocabulary's tail / head word types they keep.

    Each generation is diagnosed beside the human targets alone (not aligned with the other generations):
    a generation that lost pairs to failed decoding must not shrink the others to its ids."""
    from regurg_bench.corpora.base import Pair
    from regurg_bench.diagnostics import ReferenceAgreement, diagnose, words
    from regurg_bench.diagnostics.diversity import count_tokens
    from regurg_bench.diagnostics.runner import build_diagnostics

    c = cfg.collapse
    real_rows = read_json_objects(out / "splits" / "real.jsonl")
    tail, head = _tail_head(cfg, real_rows)

    def pairs(rows: list[dict[str, Any]]) -> list[Pair]:
        return [Pair(r["id"], r["source"], r["target"], r["src_lang"], r["tgt_lang"]) for r in rows]

    real = pairs(real_rows)
    conds = {(seed, condition(mode, k)): pairs(read_json_objects(chains["targets"][f"{condition(mode, k)}-s{seed}"]["file"]))
             for seed in cfg.seeds for mode in c.modes for k in range(1, c.generations + 1)}
    budget = min((t for t in map(count_tokens, [real, *conds.values()]) if t > 0), default=None)
    # TER's shift search is slow: a few hundred evenly spaced pairs per generation give its mean
    names = [ReferenceAgreement(ter_max_pairs=300) if n == "reference" else n for n in c.diagnostics]

    def kept(ps: list[Pair]) -> dict[str, float | None]:
        types = {w for p in ps for w in words(p.target)}
        return {"tail_kept": len(types & tail) / len(tail) if tail else None,
                "head_kept": len(types & head) / len(head) if head else None}

    def pick(report, cond: str) -> dict[str, float]:
        return {k: report.value(cond, k) for k in (*DIVERSITY_KEYS, *ERROR_KEYS) if report.value(cond, k) is not None}

    real_stats: dict[str, Any] | None = None
    per_seed: dict[str, Any] = {}
    for seed in cfg.seeds:
        stats: dict[str, Any] = {}
        for mode in c.modes:
            for k in range(1, c.generations + 1):
                cond = condition(mode, k)
                ps = conds[(seed, cond)]
                if not ps or budget is None:
                    stats[cond] = {"pairs": len(ps), "tail_kept": 0.0 if tail else None,
                                   "head_kept": 0.0 if head else None}
                    continue
                report = diagnose({"real": real, cond: ps}, diagnostics=build_diagnostics(names, token_budget=budget),
                                  label=f"collapse {cond} seed {seed}")
                if real_stats is None:
                    real_stats = {"pairs": len(real), **pick(report, "real"), **kept(real)}
                stats[cond] = {"pairs": len(ps), **pick(report, cond), **kept(ps)}
        per_seed[str(seed)] = {"stats": {"real": real_stats or {"pairs": len(real), **kept(real)}, **stats}}
    return {"per_seed": per_seed, "token_budget": budget, "tail_types": len(tail), "head_types": len(head),
            "tail_max_count": c.tail_max_count, "head_min_count": c.head_min_count,
            "diagnostics": list(c.diagnostics)}


def _verdict_word(e: dict[str, Any]) -> str:
    from regurg_bench.scoring.verdicts import short_verdict

    return short_verdict(e)


def score_chains(cfg, out: Path, chains: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Scores per generation, D_k, the growth and boundedness claims (pooled and seed by seed)."""
    from regurg_bench.protocol.report_parts import load_samples
    from regurg_bench.scoring import degradation, difference, paired_bootstrap
    from regurg_bench.scoring.bootstrap import percentile_interval
    from regurg_bench.scoring.effects import holm
    from regurg_bench.scoring.verdicts import verdict as _verdict

    c, sc = cfg.collapse, cfg.scoring
    G = c.generations
    conds = [GEN0] + [condition(m, k) for m in c.modes for k in range(1, G + 1)]
    scores: dict[str, Any] = {}
    degr: dict[str, Any] = {}
    claims: list[dict[str, Any]] = []
    for task in tasks:
        hyps: dict[str, list[list[str]]] = {}
        refs = None
        for cond in conds:
            hyps[cond] = []
            for seed in cfg.seeds:
                e = chains["evals"][f"{cond}-s{seed}"]
                _, h, r = load_samples(e["dir"], e["samples_files"][task])
                if refs is None:
                    refs = r
                elif r != refs:
                    raise ValueError(f"{cond}-s{seed}: its logged references differ from generation 0's ({task})")
                hyps[cond].append(h)
        scores[task], degr[task] = {}, {}
        task_claims: dict[tuple[str, str], dict[str, Any]] = {}
        for metric in sc.metrics:
            bs = paired_bootstrap(metric, hyps, refs or [], n=sc.resamples, seed=sc.seed)
            for cond in conds:
                lo, hi = percentile_interval(bs.replicates[cond], sc.level)
                scores[task].setdefault(cond, {})[metric] = {"score": bs.point[cond], "ci_low": lo, "ci_high": hi,
                                                             "per_seed": bs.per_seed[cond]}

            def effects(b):
                d = {(m, k): degradation(b, GEN0, condition(m, k), sc.level) for m in c.modes for k in range(1, G + 1)}
                d = dict(zip(d, holm(list(d.values())), strict=True))
                fam: dict[tuple[str, str], Any] = {}
                if G >= 2:
                    for m in c.modes:  # > 0: generation G scored worse than generation 1
                        fam[("collapse_growth", m)] = difference(b, condition(m, 1), condition(m, G), sc.level)
                if "replace" in c.modes:
                    for m in c.modes:
                        if m in ACCUMULATING:  # > 0: accumulating beat replacing at generation G
                            fam[("collapse_bounded", m)] = difference(b, condition(m, G), condition("replace", G),
                                                                      sc.level)
                fam = dict(zip(fam, holm(list(fam.values())), strict=True))
                return d, fam

            d, fam = effects(bs)
            seeds = [effects(bs.for_seed(i)) for i in range(bs.n_seeds)] if bs.n_seeds > 1 else []
            for (m, k), e in d.items():
                degr[task].setdefault(m, {}).setdefault(str(k), {})[metric] = e.to_dict()
            for key, e in fam.items():
                entry = e.to_dict() | {"verdict": _verdict(e.to_dict())}
                words = [_verdict_word(sd[1][key].to_dict()) for sd in seeds]
                if words:
                    entry |= {"per_seed_verdicts": words, "seeds_holding": sum(w == "holds" for w in words),
                              "n_seeds": len(words)}
                claim = task_claims.setdefault(key, {"claim": key[0], "mode": key[1], "task": task,
                                                     "text": CLAIM_TEXT[key[0]].format(mode=key[1]),
                                                     "per_metric": {}})
                claim["per_metric"][metric] = entry
        claims += list(task_claims.values())
    return {"scores": scores, "degradation": degr, "claims": claims, "n_test_sentences": len(refs or [])}


def tail_claims(cfg, diagnostics: dict[str, Any]) -> list[dict[str, Any]]:
    """"The tail disappears first", per mode: descriptive (type sets have no sentence-level bootstrap
    here), seed by seed, *holds* only when every seed agrees at every generation."""
    c = cfg.collapse
    out = []
    for mode in c.modes:
        per_seed = []
        for seed in cfg.seeds:
            st = diagnostics["per_seed"][str(seed)]["stats"]
            gaps = [st[condition(mode, k)]["head_kept"] - st[condition(mode, k)]["tail_kept"]
                    for k in range(1, c.generations + 1)]
            per_seed.append("holds" if all(g > 0 for g in gaps) else
                            "contradicted" if all(g < 0 for g in gaps) else "inconclusive")
        verdict = per_seed[0] if len(set(per_seed)) == 1 else "inconclusive"
        out.append({"claim": "collapse_tail", "mode": mode, "task": None,
                    "text": CLAIM_TEXT["collapse_tail"].format(mode=mode),
                    "verdict": f"{verdict} (descriptive, no interval)", "per_seed_verdicts": per_seed,
                    "seeds_holding": sum(v == "holds" for v in per_seed), "n_seeds": len(per_seed)})
    return out


# ----------------------------------------------------------------------------------- entry point
def run_collapse(cfg, out: str | Path, tasks: list[str], *, say: Callable[[str], None] = print,
                 timer: Any = None) -> dict[str, Any]:
    """Run (or resume) the study into ``out/collapse`` and return results.json's ``collapse`` section
    (also written to ``out/collapse/collapse.json``); writes the two plots into ``out``."""
    out = Path(out)
    chains = run_chains(cfg, out, tasks, say, timer)
    t = time.perf_counter()
    scored = score_chains(cfg, out, chains, tasks)
    diagnostics = diagnostics_per_generation(cfg, out, chains)
    c = cfg.collapse

    def rel(p: str | Path) -> str:
        return Path(p).absolute().relative_to(out.absolute()).as_posix()

    section = {
        "generations": c.generations, "modes": list(c.modes), "seeds": list(cfg.seeds),
        "settings": c.model_dump(mode="json"),
        "conditions": [GEN0] + [condition(m, k) for m in c.modes for k in range(1, c.generations + 1)],
        **scored,
        "diagnostics": diagnostics,
        "claims": scored["claims"] + tail_claims(cfg, diagnostics),
        "students": {n: {"mode": s.mode, "generation": s.k, "seed": s.seed, "key": s.key,
                         "model_id": rel(s.dir), "split": rel(s.split),
                         "samples": {tk: rel(Path(chains["evals"][n]["dir"]) / f)
                                     for tk, f in chains["evals"][n]["samples_files"].items()}}
                     for n, s in chains["students"].items()},
        "targets": {n: {k: (rel(v) if k in ("dir", "file") else v) for k, v in r.items()}
                    for n, r in chains["targets"].items()},
    }
    section["plots"] = write_plots(section, out)
    if timer is not None:
        timer.add("collapse_score", time.perf_counter() - t)
    _write_json(out / "collapse" / "collapse.json", section)
    return section


# -------------------------------------------------------------------------------------------- plots
def write_plots(section: dict[str, Any], out: Path) -> list[str]:
    """``collapse_scores.png`` (score vs generation, one line per mode, intervals) and
    ``collapse_diversity.png`` (diversity and tail kept vs generation, mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regurg_bench.protocol.report_parts import METRIC_LABEL, save_figure

    G, modes = section["generations"], section["modes"]
    task = next(iter(section["scores"]))
    per = section["scores"][task]
    metrics = list(per[GEN0])
    xs = list(range(G + 1))
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.6), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=True):
        for i, mode in enumerate(modes):
            pts = [per[condition(mode, k)][m] for k in xs]
            x = [k + (i - (len(modes) - 1) / 2) * 0.06 for k in xs]  # small offsets: the bars stay readable
            y = [p["score"] for p in pts]
            ax.errorbar(x, y, yerr=[[v - p["ci_low"] for v, p in zip(y, pts, strict=True)],
                                    [p["ci_high"] - v for v, p in zip(y, pts, strict=True)]],
                        marker="o", capsize=3, label=mode)
        ax.set_xticks(xs)
        ax.set_xlabel("generation (0 = real data)")
        ax.set_title(f"{METRIC_LABEL[m]} ({'lower' if m == 'ter' else 'higher'} is better)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{task}: score vs generation, 95% bootstrap CI over sentences and seeds")
    fig.tight_layout()
    save_figure(fig, out / "collapse_scores.png")

    diag = section["diagnostics"]["per_seed"]
    keys = [k for k in ("types_at_budget", "distinct_2", "tail_kept", "head_kept")
            if any(k in st for d in diag.values() for st in d["stats"].values())]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.0 * len(keys), 3.4), squeeze=False)
    labels = {"types_at_budget": "word types at equal token budget", "distinct_2": "distinct-2 (equal budget)",
              "tail_kept": "share of human tail types kept", "head_kept": "share of human head types kept"}
    for ax, key in zip(axes[0], keys, strict=True):
        for mode in modes:
            ys = []
            for k in xs:
                cond = "real" if k == 0 else condition(mode, k)
                vals = [d["stats"][cond].get(key) for d in diag.values()]
                vals = [v for v in vals if v is not None]
                ys.append(sum(vals) / len(vals) if vals else math.nan)
            ax.plot(xs, ys, marker="o", label=mode)
        if key in ("types_at_budget", "distinct_2"):
            ax.set_yscale("log")  # the first generation loses most of it; the later ones still move
        ax.set_xticks(xs)
        ax.set_xlabel("generation (0 = human targets)")
        ax.set_title(labels[key], fontsize=9)
    axes[0][0].legend(fontsize=8)
    fig.suptitle("training targets per generation (mean over seeds)")
    fig.tight_layout()
    save_figure(fig, out / "collapse_diversity.png")
    return ["collapse_scores.png", "collapse_diversity.png"]


# ------------------------------------------------------------------------------------------ report
def _fmt(e: dict[str, Any]) -> str:
    if e.get("estimate") is None:
        return f"n/a ({e['status']})"
    from regurg_bench.protocol.report_parts import fmt_bound

    return f"{e['estimate']:.3f} [{fmt_bound(e['ci_low'])}, {fmt_bound(e['ci_high'])}]"


def report_blocks(section: dict[str, Any]) -> list[tuple]:
    """The report's "Degradation across generations" blocks (see :func:`regurg_bench.protocol.report.blocks`)."""
    from regurg_bench.protocol.report_parts import METRIC_LABEL

    G, modes = section["generations"], section["modes"]
    b: list[tuple] = [("h", 2, "Degradation across generations (replace vs accumulate)"),
                      ("p", f"Generation 0 trains on the real split; the student of generation k decodes the same "
                            f"training sources greedily and its outputs are the targets of generation k+1 "
                            f"({G} generations, seeds {section['seeds']}). replace: generated targets only; "
                            "accumulate: real + every generated set so far; accumulate_equal: a seeded subsample "
                            "of that pool as large as the real split. D_k = degradation of generation k against "
                            "generation 0 (sign flipped for TER), 95% paired-bootstrap intervals over test "
                            "sentences and seeds, Holm's correction over each metric's D_k.")]
    for task, per_mode in section["degradation"].items():
        metrics = list(section["scores"][task][GEN0])
        header = ["mode", "generation"] + [f"{METRIC_LABEL[m]}" for m in metrics] + \
                 [f"D_k ({METRIC_LABEL[m]})" for m in metrics]
        s = section["scores"][task]
        rows = [["-", "0"] + [f"{s[GEN0][m]['score']:.2f} [{s[GEN0][m]['ci_low']:.2f}, {s[GEN0][m]['ci_high']:.2f}]"
                              for m in metrics] + ["(reference)"] * len(metrics)]
        for mode in modes:
            for k in range(1, G + 1):
                cond = condition(mode, k)
                rows.append([mode, str(k)]
                            + [f"{s[cond][m]['score']:.2f} [{s[cond][m]['ci_low']:.2f}, {s[cond][m]['ci_high']:.2f}]"
                               for m in metrics]
                            + [f"{_verdict_word(per_mode[mode][str(k)][m])}: {_fmt(per_mode[mode][str(k)][m])}"
                               for m in metrics])
        b.append(("h", 3, f"Scores and D_k: {task}"))
        b.append(("table", header, rows))
    b.append(("img", "collapse_scores.png"))
    b.append(("h", 3, "Claims"))
    rows = []
    for cl in section["claims"]:
        if cl["claim"] == "collapse_tail":
            rows.append([cl["text"], cl["mode"], f"{cl['verdict']}; per seed: {', '.join(cl['per_seed_verdicts'])}"])
            continue
        rows.append([cl["text"], f"{cl['mode']} ({cl['task']})",
                     "; ".join(f"{METRIC_LABEL[m]}: {e['verdict']}, {_fmt(e)}"
                               + (f", holds alone in {e['seeds_holding']}/{e['n_seeds']} seeds" if e.get("n_seeds") else "")
                               for m, e in cl["per_metric"].items())])
    b.append(("table", ["claim", "mode", "verdict per metric (Δ in metric points [95% CI])"], rows))
    b.append(("p", "Growth and boundedness are paired score differences in metric points (TER sign-flipped), "
                   "with Holm's correction over both kinds of claim per metric; the tail claim compares sets of "
                   "word types, which has no sentence-level interval here, so it is descriptive and holds only "
                   "when every seed agrees at every generation."))
    diag = section["diagnostics"]
    b.append(("h", 3, "Training targets per generation"))
    b.append(("p", f"Each generation's targets against the human targets of the same ids; diversity on the first "
                   f"{diag['token_budget']} tokens of each (the smallest generation's token count); "
                   f"tail = the {diag['tail_types']} human word types seen at most {diag['tail_max_count']} times, "
                   f"head = the {diag['head_types']} seen at least {diag['head_min_count']} times."))
    keys = ["types_at_budget", "distinct_2", "mtld", "tail_kept", "head_kept", "chrf_mean", "ratio_outlier_rate",
            "within_repeat_rate"]
    for seed, d in diag["per_seed"].items():
        present = [k for k in keys if any(k in st for st in d["stats"].values())]
        rows = [[cond, *[("-" if st.get(k) is None else f"{st[k]:,.0f}" if st[k] >= 100 else f"{st[k]:.3g}")
                         for k in present]]
                for cond, st in d["stats"].items()]
        b.append(("table", [f"seed {seed}: targets"] + present, rows))
    b.append(("img", "collapse_diversity.png"))
    return b
