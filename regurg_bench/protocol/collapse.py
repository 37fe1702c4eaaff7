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

The generations are protocol steps (:mod:`regurg_bench.protocol.collapse_steps`): the dry run lists them,
the ETA counts them, any executor runs them (Ray runs independent chains side by side), and a killed run
resumes with identical curves. Generation 0 is the main matrix's REAL student.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

from regurg_bench.corpora.lines import read_json_objects
from regurg_bench.protocol.collapse_steps import (
    ACCUMULATING,
    GEN0,
    ChainStudent,
    chain_order,
    condition,
    model_sha,
    plan_collapse,
    targets_name,
)
from regurg_bench.protocol.steps import write_json as _write_json
from regurg_bench.results import RunCollapse, TailGap
from regurg_bench.scoring.generations import CLAIM_TEXT as GENERATION_CLAIM_TEXT
from regurg_bench.scoring.generations import score_generations

__all__ = ["ACCUMULATING", "GEN0", "ChainStudent", "condition", "model_sha", "run_collapse"]
#: diagnostics statistics shown in the report and the diversity plot (when computed)
DIVERSITY_KEYS = ("types_at_budget", "distinct_1", "distinct_2", "mtld")
ERROR_KEYS = ("chrf_mean", "ter_mean", "ratio_outlier_rate", "wrong_language_rate", "within_repeat_rate")
CLAIM_TEXT = GENERATION_CLAIM_TEXT | {
    "collapse_tail": "The tail of the vocabulary disappears first under {mode}: generated targets keep a smaller share "
                     "of the human tail types than of the head types at every generation",
}


# ------------------------------------------------------------------------------------------ chain
def run_chains(cfg, out: Path, tasks: list[str], runner: Any, real: dict[str, Any],
               real_evals: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Run every generation's steps (:mod:`~regurg_bench.protocol.collapse_steps`) on the runner's executor.
    ``real`` / ``real_evals``: the main matrix's students and their evaluations (generation 0)."""
    plan = plan_collapse(cfg, out, tasks, real)
    outcomes = runner.steps(plan.steps)
    evals = {n: outcomes[step].record if step in outcomes else real_evals[step.removeprefix("eval:")]
             for n, step in plan.evals.items()}
    targets: dict[str, dict[str, Any]] = {}  # "<mode>_gen<k>-s<seed>" -> record
    data: dict[str, str] = {}
    for seed, k, mode in chain_order(cfg):
        name = f"{condition(mode, k)}-s{seed}"
        targets[name] = outcomes[f"collapse:targets:{targets_name(mode, k, seed)}"].record
        data[name] = outcomes[f"collapse:data:{name}"].record["file"]
    return {"students": plan.students, "evals": evals, "targets": targets, "data": data}


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


def load_generation_outputs(cfg, chains: dict[str, Any], task: str) -> tuple[dict[str, list[list[str]]], list[str]]:
    """Every generation condition's hypotheses per seed (seed order) and the references, from the logged samples."""
    from regurg_bench.protocol.report_parts import load_samples

    hyps: dict[str, list[list[str]]] = {}
    refs: list[str] | None = None
    for cond in [GEN0] + [condition(m, k) for m in cfg.collapse.modes for k in range(1, cfg.collapse.generations + 1)]:
        hyps[cond] = []
        for seed in cfg.seeds:
            e = chains["evals"][f"{cond}-s{seed}"]
            _, h, r = load_samples(e["dir"], e["samples_files"][task])
            if refs is None:
                refs = r
            elif r != refs:
                raise ValueError(f"{cond}-s{seed}: its logged references differ from generation 0's ({task})")
            hyps[cond].append(h)
    return hyps, refs or []


def score_chains(cfg, out: Path, chains: dict[str, Any], tasks: list[str]) -> dict[str, Any]:
    """Scores per generation, D_k, the growth and boundedness claims (pooled and seed by seed)."""
    c, sc = cfg.collapse, cfg.scoring
    scores: dict[str, Any] = {}
    degr: dict[str, Any] = {}
    claims: list[dict[str, Any]] = []
    refs: list[str] = []
    for task in tasks:
        hyps, refs = load_generation_outputs(cfg, chains, task)
        scores[task], degr[task], task_claims = score_generations(
            hyps, refs, task, modes=list(c.modes), generations=c.generations, metrics=list(sc.metrics),
            resamples=sc.resamples, seed=sc.seed, level=sc.level)
        claims += task_claims
    return {"scores": scores, "degradation": degr, "claims": claims, "n_test_sentences": len(refs)}


def tail_claims(cfg, out: Path, chains: dict[str, Any]) -> list[dict[str, Any]]:
    """"The tail disappears first", per mode: a verdict from an interval over word types at every generation
    (:mod:`~regurg_bench.protocol.collapse_tail`), and seed by seed (descriptive: each seed's gaps' signs)."""
    from regurg_bench.diagnostics import words
    from regurg_bench.protocol.collapse_tail import tail_claim_intervals

    c, sc = cfg.collapse, cfg.scoring
    tail, head = (sorted(x) for x in _tail_head(cfg, read_json_objects(out / "splits" / "real.jsonl")))
    kept = {(mode, k, seed): {w for r in read_json_objects(chains["targets"][f"{condition(mode, k)}-s{seed}"]["file"])
                              for w in words(r["target"])}
            for seed, k, mode in chain_order(cfg)}
    claims = []
    for mode in c.modes:
        gens = range(1, c.generations + 1)
        verdict, per_generation = tail_claim_intervals(
            tail, head, [[kept[(mode, k, seed)] for seed in cfg.seeds] for k in gens],
            resamples=sc.resamples, seed=sc.seed, level=sc.level)
        per_seed = []
        for seed in cfg.seeds:
            _, own = tail_claim_intervals(tail, head, [[kept[(mode, k, seed)]] for k in gens],
                                          resamples=1, seed=sc.seed, level=sc.level)
            gaps = [g["estimate"] for g in own]
            per_seed.append("undefined" if None in gaps else "holds" if all(g > 0 for g in gaps)
                            else "contradicted" if all(g < 0 for g in gaps) else "inconclusive")
        claims.append({"claim": "collapse_tail", "mode": mode, "task": None,
                       "text": CLAIM_TEXT["collapse_tail"].format(mode=mode), "verdict": verdict,
                       "per_generation": per_generation, "level": sc.level, "resamples": sc.resamples,
                       "interval_over": "word types (tail and head resampled apart; seeds averaged per type)",
                       "per_seed_verdicts": per_seed, "seeds_holding": sum(v == "holds" for v in per_seed),
                       "n_seeds": len(per_seed)})
    return claims


# ----------------------------------------------------------------------------------- entry point
def run_collapse(cfg, out: str | Path, tasks: list[str], runner: Any, real: dict[str, Any],
                 real_evals: dict[str, dict[str, Any]]) -> RunCollapse:
    """Run (or resume) the study into ``out/collapse`` on ``runner`` (:class:`~regurg_bench.protocol.run.Runner`)
    and return results.json's ``collapse`` section (also written to ``out/collapse/collapse.json``); writes the
    two plots into ``out``. ``real`` / ``real_evals``: the main matrix's students and evaluations."""
    out = Path(out)
    chains = run_chains(cfg, out, tasks, runner, real, real_evals)
    t = time.perf_counter()
    scored = score_chains(cfg, out, chains, tasks)
    diagnostics = diagnostics_per_generation(cfg, out, chains)
    c = cfg.collapse

    def rel(p: str | Path) -> str:
        return Path(p).absolute().relative_to(out.absolute()).as_posix()

    section = RunCollapse.model_validate({
        "generations": c.generations, "modes": list(c.modes), "seeds": list(cfg.seeds),
        "settings": c.model_dump(mode="json"),
        "conditions": [GEN0] + [condition(m, k) for m in c.modes for k in range(1, c.generations + 1)],
        **scored,
        "diagnostics": diagnostics,
        "claims": scored["claims"] + tail_claims(cfg, out, chains),
        "students": {n: {"mode": s.mode, "generation": s.k, "seed": s.seed, "key": s.key,
                         "model_id": rel(s.dir), "split": rel(s.split),
                         "samples": {tk: rel(Path(chains["evals"][n]["dir"]) / f)
                                     for tk, f in chains["evals"][n]["samples_files"].items()}}
                     for n, s in chains["students"].items()},
        "targets": {n: {k: (rel(v) if k in ("dir", "file") else v) for k, v in r.items()}
                    for n, r in chains["targets"].items()},
    })
    section = section.model_copy(update={"plots": write_plots(section, out)})
    runner.add("collapse_score", time.perf_counter() - t)
    _write_json(out / "collapse" / "collapse.json", section.model_dump(mode="json", exclude_unset=True))
    return section


# -------------------------------------------------------------------------------------------- plots
def write_plots(section: RunCollapse, out: Path) -> list[str]:
    """``collapse_scores.png`` (score vs generation, one line per mode, intervals) and
    ``collapse_diversity.png`` (diversity and tail kept vs generation, mean over seeds)."""
    from regurg_bench.metric_table import metric_title
    from regurg_bench.protocol.report_parts import panels, save_figure

    G, modes = section.generations, section.modes
    task = next(iter(section.scores))
    per = section.scores[task]
    metrics = list(per[GEN0])
    xs = list(range(G + 1))
    fig, axes = panels(len(metrics), 3.6)
    for ax, m in zip(axes[0], metrics, strict=True):
        for i, mode in enumerate(modes):
            pts = [per[condition(mode, k)][m] for k in xs]
            x = [k + (i - (len(modes) - 1) / 2) * 0.06 for k in xs]  # small offsets: the bars stay readable
            y = [p.score for p in pts]
            ax.errorbar(x, y, yerr=[[v - p.ci_low for v, p in zip(y, pts, strict=True)],
                                    [p.ci_high - v for v, p in zip(y, pts, strict=True)]],
                        marker="o", capsize=3, label=mode)
        ax.set_xticks(xs)
        ax.set_xlabel("generation (0 = real data)")
        ax.set_title(metric_title(m))
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{task}: score vs generation, 95% bootstrap CI over sentences and seeds")
    save_figure(fig, out / "collapse_scores.png")

    diag = section.diagnostics.per_seed
    keys = [k for k in ("types_at_budget", "distinct_2", "tail_kept", "head_kept")
            if any(k in st for d in diag.values() for st in d.stats.values())]
    fig, axes = panels(len(keys), 3.4, width=4.0)
    labels = {"types_at_budget": "word types at equal token budget", "distinct_2": "distinct-2 (equal budget)",
              "tail_kept": "share of human tail types kept", "head_kept": "share of human head types kept"}
    for ax, key in zip(axes[0], keys, strict=True):
        for mode in modes:
            ys = []
            for k in xs:
                cond = "real" if k == 0 else condition(mode, k)
                vals = [d.stats[cond].get(key) for d in diag.values()]
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
    save_figure(fig, out / "collapse_diversity.png")
    return ["collapse_scores.png", "collapse_diversity.png"]


# ------------------------------------------------------------------------------------------ report
def _gap(g: TailGap) -> str:
    if g.estimate is None or g.ci_low is None:
        return ("-" if g.estimate is None else f"{g.estimate:+.3f}") + \
            f" (no interval: {g.tail_types} tail / {g.head_types} head types)"
    return f"{g.estimate:+.3f} [{g.ci_low:+.3f}, {g.ci_high:+.3f}]"


def report_blocks(section: RunCollapse) -> list[tuple]:
    """The report's "Degradation across generations" blocks (see :func:`regurg_bench.protocol.report.blocks`)."""
    from regurg_bench.metric_table import METRIC_LABEL
    from regurg_bench.protocol.report_parts import fmt_effect, fmt_score
    from regurg_bench.scoring.verdicts import short_verdict

    G, modes = section.generations, section.modes
    b: list[tuple] = [("h", 2, "Degradation across generations (replace vs accumulate)"),
                      ("p", f"Generation 0 trains on the real split; the student of generation k decodes the same "
                            f"training sources greedily and its outputs are the targets of generation k+1 "
                            f"({G} generations, seeds {section.seeds}). replace: generated targets only; "
                            "accumulate: real + every generated set so far; accumulate_equal: a seeded subsample "
                            "of that pool as large as the real split. D_k = degradation of generation k against "
                            "generation 0 (sign flipped for TER), 95% paired-bootstrap intervals over test "
                            "sentences and seeds, Holm's correction over each metric's D_k.")]
    for task, per_mode in section.degradation.items():
        s = section.scores[task]
        metrics = list(s[GEN0])
        header = ["mode", "generation"] + [f"{METRIC_LABEL[m]}" for m in metrics] + \
                 [f"D_k ({METRIC_LABEL[m]})" for m in metrics]
        rows = [["-", "0"] + [fmt_score(s[GEN0][m]) for m in metrics] + ["(reference)"] * len(metrics)]
        for mode in modes:
            for k in range(1, G + 1):
                d = per_mode[mode][str(k)]
                rows.append([mode, str(k)] + [fmt_score(s[condition(mode, k)][m]) for m in metrics]
                            + [f"{short_verdict(d[m])}: {fmt_effect(d[m], status=False)}" for m in metrics])
        b.append(("h", 3, f"Scores and D_k: {task}"))
        b.append(("table", header, rows))
    b.append(("img", "collapse_scores.png"))
    b.append(("h", 3, "Claims"))
    rows = []
    for cl in section.claims:
        if cl.claim == "collapse_tail":
            gaps = "; ".join(f"gen {g.generation}: " + _gap(g) for g in cl.per_generation)
            rows.append([cl.text, cl.mode, f"{cl.verdict}; head kept - tail kept {gaps}; "
                                           f"per seed: {', '.join(cl.per_seed_verdicts)}"])
            continue
        rows.append([cl.text, f"{cl.mode} ({cl.task})",
                     "; ".join(f"{METRIC_LABEL[m]}: {e.verdict}, {fmt_effect(e, status=False)}"
                               + (f", holds alone in {e.seeds_holding}/{e.n_seeds} seeds" if e.n_seeds else "")
                               for m, e in cl.per_metric.items())])
    b.append(("table", ["claim", "mode", "verdict per metric (Δ in metric points [95% CI])"], rows))
    b.append(("p", "Growth and boundedness are paired score differences in metric points (TER sign-flipped), "
                   "with Holm's correction over both kinds of claim per metric. The tail claim's gap is the share of the "
                   "human head types kept minus the share of tail types kept (a type's value: the share of seeds "
                   "keeping it), with a percentile interval over resampled word types; it holds when every "
                   "generation's interval lies above 0."))
    diag = section.diagnostics
    b.append(("h", 3, "Training targets per generation"))
    b.append(("p", f"Each generation's targets against the human targets of the same ids; diversity on the first "
                   f"{diag.token_budget} tokens of each (the smallest generation's token count); "
                   f"tail = the {diag.tail_types} human word types seen at most {diag.tail_max_count} times, "
                   f"head = the {diag.head_types} seen at least {diag.head_min_count} times."))
    keys = ["types_at_budget", "distinct_2", "mtld", "tail_kept", "head_kept", "chrf_mean", "ratio_outlier_rate",
            "within_repeat_rate"]
    for seed, d in diag.per_seed.items():
        present = [k for k in keys if any(k in st for st in d.stats.values())]
        rows = [[cond, *[("-" if st.get(k) is None else f"{st[k]:,.0f}" if st[k] >= 100 else f"{st[k]:.3g}")
                         for k in present]]
                for cond, st in d.stats.items()]
        b.append(("table", [f"seed {seed}: targets"] + present, rows))
    b.append(("img", "collapse_diversity.png"))
    return b
