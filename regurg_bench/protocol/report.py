"""Scoring of a finished student matrix (from the saved lm-eval samples) and the report files.

Every number comes from the logged samples: hypotheses (``filtered_resps[0]``) and references
(``target``), ordered by ``doc_id``; the corpus scores are recomputed with the same sacrebleu objects
lm-eval used and checked against lm-eval's reported values. ``results.json`` is the leaderboard
submission (strict JSON); ``report.md`` and ``report.html`` render the same blocks; ``scores.png``
plots every condition's score with its 95% interval.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.metric_table import METRIC_LABEL, metric_title
from regurg_bench.protocol.fingerprints import weight_fingerprints
from regurg_bench.protocol.mitigations import mitigation_claims
from regurg_bench.protocol.report_parts import fmt_effect, fmt_score, load_samples, panels, save_figure
from regurg_bench.results import RESULTS_SCHEMA, RunClaim, RunResults, RunScore, RunVerdict, validated
from regurg_bench.scoring.bootstrap import prefetch_stats
from regurg_bench.scoring.effects import OK
from regurg_bench.scoring.matrix import CORRECTION, MatrixEffects, score_metric
from regurg_bench.scoring.verdicts import SHORT_VERDICT, robustness, short_verdict, verdict

#: The report's plots (written when they have data), with captions.
PLOTS = [("scores.png", "Score per condition with 95% intervals"),
         ("sizes.png", "Score vs training size, real vs generated (size ladder)"),
         ("recovery.png", "Recovery R per mitigation with intervals"),
         ("diagnostics.png", "Diagnostics of the training splits, human vs generated")]
def hyps_from_evals(students: dict[str, Any], evals: dict[str, Any], task: str
                    ) -> tuple[dict[str, list[list[str]]], list[str]]:
    """{condition: [hyps of seed 0, seed 1, ...]} and the shared references."""
    by_cond: dict[str, list[tuple[int, list[str]]]] = {}
    refs, doc_ids = None, None
    for name, s in students.items():
        e = evals[name]
        ids, hyps, r = load_samples(e["dir"], e["samples_files"][task])
        if refs is None:
            refs, doc_ids = r, ids
        elif r != refs or ids != doc_ids:
            raise ValueError(f"{name}: its logged references differ from the other students' ({task})")
        by_cond.setdefault(s.condition, []).append((s.seed, hyps))
    return {c: [h for _, h in sorted(v, key=lambda t: t[0])] for c, v in by_cond.items()}, refs or []


def _rel(path: str | Path | None, root: Path) -> str | None:
    """``path`` relative to ``root`` in POSIX form (None stays None; paths outside ``root`` stay absolute)."""
    if path is None:
        return None
    path, root = Path(path).absolute(), Path(root).absolute()
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()


def _conditions(students: dict[str, Any]) -> dict[str, Any]:
    """{condition: kind, generator, seeds (and size)} in the order the students list them."""
    conditions: dict[str, Any] = {}
    for s in students.values():
        info = conditions.setdefault(s.condition, {"kind": s.kind, "generator": s.generator, "seeds": []})
        info["seeds"].append(s.seed)
        if s.size is not None:
            info["size"] = s.size
    return conditions


def _score_tasks(sc, gens: list[str], students: dict[str, Any], evals: dict[str, Any], tasks: list[str],
                 conditions: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Scores, degradation, recovery, differences, checks against lm-eval and per-seed effects, each
    ``{task: ...}``; also records each condition's ``effective_seeds`` in ``conditions``."""
    scores, degr, recov, diffs, checks, per_seed_effects = {}, {}, {}, {}, {}, {}
    for task in tasks:
        hyps_by_cond, refs = hyps_from_evals(students, evals, task)
        for cond, seeds in hyps_by_cond.items():  # seeds with identical outputs are one replicate
            distinct = len({json.dumps(h) for h in seeds})
            info = conditions[cond]
            info["effective_seeds"] = min(info.get("effective_seeds", distinct), distinct)
        scores[task], degr[task], recov[task], diffs[task], per_seed_effects[task] = {}, {}, {}, {}, {}
        max_diff = 0.0
        prefetch_stats(sc.metrics, hyps_by_cond, refs)  # every metric's sentence statistics, in parallel
        for metric in sc.metrics:
            ms = score_metric(metric, hyps_by_cond, refs, conditions, gens, resamples=sc.resamples, seed=sc.seed,
                              level=sc.level)
            for cond, row in ms.rows.items():
                reported = [evals[f"{cond}-s{seed}"]["reported"][task][f"{metric},none"]
                            for seed in sorted(conditions[cond]["seeds"])]
                for a, b in zip(row["per_seed"], reported, strict=False):
                    max_diff = max(max_diff, abs(a - b))
                scores[task].setdefault(cond, {})[metric] = row | {"lm_eval_reported": reported}
            _store_effects(ms.effects, metric, degr[task], recov[task], diffs[task])
            # the same claims on each seed alone (intervals over test sentences only)
            for i, one in enumerate(ms.per_seed_effects):
                seed_d, seed_r, seed_x = per_seed_effects[task].setdefault(i, ({}, {}, {}))
                _store_effects(one, metric, seed_d, seed_r, seed_x)
        checks[task] = {"n_test_sentences": len(refs), "max_abs_diff_vs_lm_eval": max_diff,
                        "equal_to_lm_eval": max_diff <= 1e-9}
    return scores, degr, recov, diffs, checks, per_seed_effects


def _student_records(cfg, out: Path, students: dict[str, Any], evals: dict[str, Any]) -> dict[str, Any]:
    """{student: its condition, seed, weights, data and lm-eval files}; paths relative to the run folder, so a
    run folder is self-contained (a leaderboard submission)."""
    return {name: {"condition": s.condition, "seed": s.seed, "key": s.key, "model_id": _rel(s.dir, out),
                   "split": _rel(s.split, out), "curriculum": _rel(s.curriculum, out),
                   "forget": _rel(s.forget, out), "base_student": s.base_student,
                   "base_model": (cfg.train.get("base_model", "scratch:tiny") if not s.base_student
                                  else _rel(students[s.base_student].dir, out)),
                   "samples": {t: _rel(Path(evals[name]["dir"]) / f, out) for t, f in
                               evals[name]["samples_files"].items()},
                   "results_file": _rel(Path(evals[name]["dir"]) / evals[name]["results_file"], out)}
            for name, s in students.items()}


def score_run(cfg, out: Path, students: dict[str, Any], evals: dict[str, Any], tasks: list[str],
              derived: dict[str, Any], manifest: dict[str, Any], notes: list[str],
              diagnostics: dict[str, Any] | None = None) -> RunResults:
    """The run's results (``results.json`` is their serialisation): every student's logged outputs scored per task,
    metric and condition with paired-bootstrap intervals, D and R, the claims' verdicts, and the provenance of each
    number."""
    sc = cfg.scoring
    gens = list(cfg.build.generators)
    conditions = _conditions(students)
    scores, degr, recov, diffs, checks, per_seed_effects = _score_tasks(sc, gens, students, evals, tasks, conditions)
    first_eval = next(iter(evals.values()))
    results = {
        "schema": RESULTS_SCHEMA,
        "name": cfg.name,
        "config_hash": cfg.config_hash(),
        "config": cfg.model_dump(mode="json"),
        "tasks": tasks,
        "lm_eval_version": first_eval["lm_eval_version"],
        "task_versions": first_eval["task_versions"],
        "sacrebleu_signatures": first_eval["sacrebleu_signatures"],
        "test_set_fingerprints": first_eval["test_set_fingerprints"],
        "eval_settings": first_eval["settings"],
        "scoring": {"method": "paired bootstrap over test sentences (and over seeds when several), "
                              "percentile intervals", "resamples": sc.resamples, "level": sc.level, "seed": sc.seed,
                    "correction": CORRECTION},
        "resolved": cfg.resolved(),
        "data": {"build_config_hash": manifest["config_hash"], "corpus": manifest["corpus"],
                 "matched_pairs": manifest["matched"],
                 "generators": manifest["generators"],
                 "split_fingerprints": {k: v["fingerprint"] for k, v in manifest["conditions"].items()}},
        "conditions": conditions,
        # the order the conditions were bootstrapped in (with several seeds the replicates depend on it)
        "condition_order": list(conditions),
        "students": _student_records(cfg, out, students, evals),
        "mitigation_data": {k: v | {"dir": _rel(v["dir"], out)} for k, v in derived.items()},
        "fingerprints": weight_fingerprints(cfg, students, manifest),  # the weights actually used (compare)
        "scores": scores,
        "degradation": degr,
        "recovery": recov,
        "differences": diffs,
        "diagnostics": diagnostics,
        "claims": claims(degr, recov, diffs, conditions, gens, diagnostics, per_seed_effects),
        "checks": checks,
        "notes": notes,
    }
    # the one typed model the report, submit, the verifier, compare and the leaderboard read: what scoring produces
    # must pass it here, not fail later in someone else's submission (dict order is kept: run order)
    return validated(RunResults, results, "results.json as scored", RuntimeError)


def _store_effects(fx: MatrixEffects, metric: str, degr: dict, recov: dict, diffs: dict) -> None:
    for cond, e in fx.degradation.items():
        degr.setdefault(cond, {})[metric] = e.to_dict()
    for cond, bases in fx.recovery.items():
        for base, e in bases.items():
            recov.setdefault(cond, {}).setdefault(base, {})[metric] = e.to_dict()
    for better, against in fx.differences.items():
        for worse, e in against.items():
            diffs.setdefault(better, {}).setdefault(worse, {})[metric] = e.to_dict()


ROBUSTNESS_TEXT = ("A verdict is *robust* when its Holm-adjusted p-value is at most 0.01, it rests on at least two "
                   "distinct seeds, at least k - 1 of its k seeds agree with it alone, and its interval lies at least "
                   "its own half-width away from 0; otherwise it is *fragile* (treat it as a lead, not a finding). In "
                   "simulated second runs with new seeds no robust verdict was reversed; with 5 seeds all were "
                   "repeated, with 3 seeds 79 % (tests/test_scoring_calibration.py). Intervals add to the test-"
                   "sentence resampling each condition's seed error (Student's t with k - 1 degrees of freedom), so "
                   "their false-positive rate is at most 5 % with 2, 3 or 5 seeds in simulation; seeds with identical "
                   "outputs count as one.")


def _verdict_with_robustness(effect: RunVerdict) -> str:
    rob = effect.robustness
    return f"{effect.verdict} ({rob})" if rob in ("robust", "fragile") else effect.verdict


def why_inconclusive(effect: RunVerdict) -> str:
    """For a verdict that is not robust: the smallest effect this run could detect and the seeds the observed
    effect would need (empty for robust verdicts and effects without an interval)."""
    if effect.robustness == "robust" or effect.detectable is None:
        return ""
    text = f"this run detects |effect| >= {effect.detectable:.3g} (80 % power)"
    needed, n = effect.seeds_needed, effect.effective_seeds or effect.n_seeds or 1
    if effect.estimate is None:
        return text
    if needed is None:
        share = effect.seed_share
        return text + ("; more seeds would not detect the observed effect (test-sentence noise alone hides it)"
                       if share is not None and share < 1.0 else "")
    return text + (f"; the observed effect needs ~{needed} seeds" if needed > n else
                   "; the observed effect is within reach at these seeds (a chance miss, or it is smaller than estimated)")


def robustness_counts(results: RunResults) -> dict[str, int]:
    """How many claim x metric verdicts are robust, fragile and inconclusive."""
    counts = {"robust": 0, "fragile": 0, "inconclusive": 0}
    for c in results.claims:
        for v in c.per_metric.values():
            counts[v.robustness_or_default()] += 1
    return counts


def _seeds_agree(v: RunVerdict) -> str:
    """``k/n``: how many seeds agree with the pooled verdict alone (empty with one seed)."""
    return f"{v.agreeing()}/{v.n_seeds}" if (v.n_seeds or 0) > 1 else ""


def _num(x: float) -> str:
    return f"{x:.3g}" if abs(x) < 1 else f"{x:,.1f}"


CLAIM_TEXT = {
    "degradation": "Training on regurgitated targets degrades the student vs real targets (same sources, same budget): D > 0",
    "ladder": "Real beats regurgitated data at every equal training size (size ladder): Δ > 0",
    "fraction": "A fraction of the real data beats all of the generated data (full size): Δ > 0",
    "errors": "Mechanism (a): generated targets have higher error rates than human ones (error proxies)",
    "diversity": "Mechanism (b): generated targets have lower lexical diversity than human ones",
} | mitigation_claims()  # each mitigation's own claims (regurg_bench/protocol/mitigations)


def _diagnostic_claims(diagnostics: dict[str, Any], gens: list[str]) -> list[dict[str, Any]]:
    """Descriptive (point) comparisons of each generated split with the human one, per key statistic."""
    out = []
    for family in ("errors", "diversity"):
        for g in gens:
            per = {}
            for key, st in diagnostics["stats"].items():
                real, gen = st["values"].get("real"), st["values"].get(f"regurg_{g}")
                if st["family"] != family or st["better"] not in ("higher", "lower") or real is None or gen is None:
                    continue
                worse = gen < real if st["better"] == "higher" else gen > real
                verdict = "equal" if gen == real else ("holds" if worse else "contradicted")
                per[key] = {"label": st["label"], "better": st["better"], "real": real, "generated": gen,
                            "verdict": verdict + " (descriptive, no interval)"}
            if per:
                out.append({"claim": family, "text": CLAIM_TEXT[family], "task": None,
                            "condition": f"regurg_{g}", "generator": g, "per_metric": {}, "per_stat": per})
    return out


def _seed_verdicts(effects: dict[str, Any], seed_effects: list[dict[str, Any] | None],
                   effective_seeds: int) -> dict[str, Any]:
    """Each metric's pooled effect and verdict, with each seed's own verdict, how many seeds agree with the pooled
    one alone, the distinct replicates and the robustness (:func:`regurg_bench.scoring.verdicts.robustness`)."""
    per_metric = {m: {"verdict": verdict(e), **e} for m, e in effects.items()}
    for m, entry in per_metric.items():
        words = [short_verdict(e[m]) if e and m in e else "missing" for e in seed_effects]
        entry |= {"per_seed_verdicts": words, "seeds_holding": sum(w == "holds" for w in words),
                  "seeds_agreeing": sum(w == SHORT_VERDICT.get(entry["verdict"], entry["verdict"]) for w in words),
                  "n_seeds": len(words), "effective_seeds": effective_seeds}
        entry["robustness"] = robustness(entry, words, effective_seeds)
    return per_metric


def _effective(conditions: dict[str, Any], *names: str) -> int:
    """Distinct replicates behind a claim: the fewest effective seeds among the conditions it compares."""
    return min(conditions[c].get("effective_seeds", len(conditions[c]["seeds"])) for c in names if c in conditions)


def claims(degr, recov, diffs, conditions, gens, diagnostics, per_seed) -> list[dict[str, Any]]:
    """One row per claim, with the pooled verdict per metric and the verdict of every seed alone.

    ``per_seed``: task -> seed index -> (degradation, recovery, differences) trees as for one seed."""
    out = []

    def add(kind: str, task: str, cond: str, generator: str, effects: dict[str, Any],
            seed_effects: list[dict[str, Any] | None], *compared: str) -> None:
        out.append({"claim": kind, "text": CLAIM_TEXT[kind], "task": task, "condition": cond, "generator": generator,
                    "per_metric": _seed_verdicts(effects, seed_effects, _effective(conditions, *compared))})

    for task in degr:
        seeds = [per_seed.get(task, {})[i] for i in sorted(per_seed.get(task, {}))]
        for g in gens:
            reg = f"regurg_{g}"
            add("degradation", task, reg, g, degr[task][reg], [sd[0].get(reg) for sd in seeds], "real", reg)
        for better, against in diffs.get(task, {}).items():
            kind = "fraction" if conditions[better]["kind"] == "fraction" else "ladder"
            for worse, effects in against.items():
                add(kind, task, f"{better} vs {worse}", worse.removeprefix("regurg_"), effects,
                    [sd[2].get(better, {}).get(worse) for sd in seeds], better, worse)
        for cond, info in conditions.items():
            if info["kind"] not in CLAIM_TEXT or info["kind"] in ("fraction", "ladder"):
                continue
            bases = recov[task].get(cond, {})
            for base, effects in bases.items():
                add(info["kind"], task, f"{cond} vs {base}" if len(bases) > 1 else cond, base.removeprefix("regurg_"),
                    effects, [sd[1].get(cond, {}).get(base) for sd in seeds], "real", base, cond)
    if diagnostics:
        out += _diagnostic_claims(diagnostics, gens)
    if not any(c["claim"] == "m2_multigen" for c in out):
        out.append({"claim": "m2_multigen", "text": CLAIM_TEXT["m2_multigen"], "task": None, "condition": None,
                    "generator": None, "per_metric": {},
                    "verdict": "not tested (needs >= 2 generators)"})
    return out


# ---------------------------------------------------------------------------------------- render
def blocks(results: RunResults) -> list[tuple]:
    """The report as blocks: ("h", level, text[, user text]) | ("p", text) | ("table", header, rows) | ("img", path)."""
    level = int(results.scoring.level * 100)
    b = _intro_blocks(results, level)
    for task in results.tasks:
        b.append(("h", 2, f"Scores: {task}"))
        b.append(_score_table(results, task, level))
    b.append(("img", "scores.png"))
    b += _claim_blocks(results, level)
    b += _plot_blocks(results)
    if results.collapse is not None:
        from regurg_bench.protocol.collapse import report_blocks

        b += report_blocks(results.collapse)
    b += _appendix_blocks(results)
    return b


def _intro_blocks(results: RunResults, level: int) -> list[tuple]:
    """The title (the run name is user text: a 4th element, escaped by each renderer) and how the numbers were made."""
    return [("h", 1, "regurg-bench protocol report: ", str(results.name)),
            ("p", f"Config hash `{results.config_hash}`; lm-eval {results.lm_eval_version}; "
                  f"tasks {', '.join(results.tasks)}; {results.scoring.resamples} paired bootstrap "
                  f"resamples, {level}% percentile intervals. Scores are sacrebleu corpus scores recomputed "
                  "from the logged lm-eval samples (checked equal to lm-eval's: "
                  + ", ".join(f"{t}: {'yes' if c.equal_to_lm_eval else 'NO'}, "
                              f"{c.n_test_sentences} sentences" for t, c in results.checks.items())
                  + "). D = (S_real - S_regurg)/S_real (sign flipped for TER, so D > 0 always means real "
                    "data is better); R = (S_m - S_regurg)/(S_real - S_regurg).")]


def _effect_cells(results: RunResults, task: str, cond: str, metrics: list[str]) -> list[str]:
    """A condition's D (regurgitated), R (against each baseline) or "(reference)", per metric."""
    if results.conditions[cond].kind == "regurg":
        return ["D " + fmt_effect(results.degradation[task][cond][m]) for m in metrics]
    base = results.recovery[task].get(cond)
    if not base:
        return ["(reference)"] * len(metrics)
    if len(base) > 1:
        return ["; ".join(f"R vs {k}: " + fmt_effect(v[m]) for k, v in base.items()) for m in metrics]
    return ["R " + fmt_effect(next(iter(base.values()))[m]) for m in metrics]


def _score_table(results: RunResults, task: str, level: int) -> tuple:
    """One row per condition of ``task``: seeds, each metric's score and interval, then its D or R."""
    metrics = results.metrics()
    header = ["condition", "seeds"] + [f"{METRIC_LABEL[m]} [{level}% CI]" for m in metrics] + \
             [f"D or R ({METRIC_LABEL[m]})" for m in metrics]
    rows = []
    for cond, per in results.scores[task].items():
        info = results.conditions[cond]
        distinct = info.distinct_seeds()
        seeds = ",".join(map(str, info.seeds)) + (f" ({distinct} distinct)" if distinct < len(info.seeds) else "")
        rows.append([cond, seeds] + [fmt_score(per[m]) for m in metrics] + _effect_cells(results, task, cond, metrics))
    return ("table", header, rows)


def _claim_row(c: RunClaim) -> list[str]:
    """A claim's row of the claims table: its text, where it was tested, and its verdict per metric or statistic."""
    if c.per_stat:
        verdicts = "; ".join(f"{v.label} ({v.better} is better): human {_num(v.real)}, generated "
                             f"{_num(v.generated)}: {v.verdict}" for v in c.per_stat.values())
        return [c.text, f"{c.condition} (training split)", verdicts]
    if not c.per_metric:
        return [c.text, "-", c.verdict or ""]
    verdicts = "; ".join(f"{METRIC_LABEL[m]}: {_verdict_with_robustness(v)}, {fmt_effect(v)}"
                         + (f", agrees alone in {agree} seeds ({', '.join(v.per_seed_verdicts or [])})"
                            if (agree := _seeds_agree(v)) else "")
                         + (f"; {why}" if (why := why_inconclusive(v)) else "")
                         for m, v in c.per_metric.items())
    return [c.text, f"{c.condition} ({c.task})", verdicts]


def _claim_blocks(results: RunResults, level: int) -> list[tuple]:
    """The paper's claims: a verdict table, the verdict counts, and how to read a verdict."""
    rows = [_claim_row(c) for c in results.claims]
    counts = robustness_counts(results)
    return [("h", 2, "Paper claims"),
            ("table", ["claim", "condition", f"verdict per metric (estimate [{level}% CI])"], rows),
            ("p", f"**{counts['robust']} robust, {counts['fragile']} fragile, {counts['inconclusive']} "
                  "inconclusive verdicts.** " + ROBUSTNESS_TEXT),
            ("p", "A claim *holds* when the interval lies above 0, is *contradicted* when it lies below 0, and "
                  "is *inconclusive* when it contains 0 or when the comparison is not significant after "
                  "Holm's step-down correction over its family (" + (results.scoring.correction or "none")
                  + "). With several seeds the intervals resample seeds and test sentences; each claim also "
                  "gives its verdict on every seed alone (intervals over test sentences only). Recovery is undefined "
                  "(no number) when the degradation it would recover is not established after Holm's correction. Δ is a paired score difference in metric points (TER: "
                  "sign flipped). The mechanism rows compare the training splits themselves (point values of "
                  "the diagnostics, no interval).")]


def _plot_blocks(results: RunResults) -> list[tuple]:
    """Each plot the run drew besides scores.png (shown above), under its caption."""
    return [block for name, caption in PLOTS if name in results.plots and name != "scores.png"
            for block in (("h", 3, caption), ("img", name))]


def _appendix_blocks(results: RunResults) -> list[tuple]:
    """Mitigation data, notes, stage times and provenance (each where the run has it)."""
    b: list[tuple] = []
    if results.mitigation_data:
        b.append(("h", 2, "Mitigation data"))
        b.append(("table", ["step", "details"],
                  [[k, json.dumps({kk: vv for kk, vv in v.items() if kk != "dir"}, sort_keys=True)]
                   for k, v in results.mitigation_data.items()]))
    if results.notes:
        b.append(("h", 2, "Notes"))
        b += [("p", n) for n in results.notes]
    if results.timings_s:
        b.append(("h", 2, "Stage times"))
        b.append(("table", ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in results.timings_s.items()]))
        if "students" in results.timings_s:
            b.append(("p", "train and eval: the seconds of their steps, summed; students: the wall time of training "
                           "and evaluating every student (less than the sum when worker processes ran steps side "
                           "by side, --workers)."))
    b.append(("h", 2, "Provenance"))
    b.append(("table", ["student", "model", "samples"],
              [[n, s.model_id, ", ".join(s.samples.values())] for n, s in results.students.items()]))
    b.append(("table", ["metric", "sacrebleu signature"], [[k, v] for k, v in results.sacrebleu_signatures.items()]))
    return b


def terminal_summary(results: RunResults, report_path: Path | str):
    """The end of ``regurg-bench run`` on a terminal: one rich table row per claim x metric (estimate and
    interval, verdict, robustness, seeds agreeing), the verdict counts, and where the report is."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from regurg_bench.console import plain

    style = {"robust": "bold green", "fragile": "yellow", "inconclusive": "dim"}
    table = Table(title=plain(f"{results.name}: paper claims ({int(results.scoring.level * 100)}% intervals)"),
                  show_lines=False, header_style="bold")
    for col in ("claim", "condition", "metric", "estimate [CI]", "verdict", "robustness", "seeds agree"):
        table.add_column(col, overflow="fold")
    for c in results.claims:
        for m, v in c.per_metric.items():
            rob = v.robustness_or_default()
            table.add_row(plain(c.claim.replace("_", " ")), plain(c.condition), METRIC_LABEL[m],
                          plain(fmt_effect(v).split(" (")[0]), plain(SHORT_VERDICT.get(v.verdict, v.verdict)),
                          Text(rob, style=style[rob]), _seeds_agree(v) or "-")
    counts = robustness_counts(results)
    footer = Text.assemble((f"{counts['robust']} robust", "bold green"), ", ", (f"{counts['fragile']} fragile", "yellow"),
                           ", ", f"{counts['inconclusive']} inconclusive; report: ", plain(report_path))
    return Group(table, footer)


def _headline_cell(e: RunVerdict) -> str:
    """A claim's verdict on one metric: the short verdict (**bold** robust, "(fragile)"), estimate, interval, seeds."""
    short = SHORT_VERDICT.get(e.verdict, e.verdict)
    if e.robustness in ("robust", "fragile"):
        short = f"**{short}**" if e.robustness == "robust" else f"{short} (fragile)"
    agree = f" ({agree} seeds)" if (agree := _seeds_agree(e)) else ""
    return (short if e.estimate is None else f"{short}: {fmt_effect(e).split(' (')[0]}") + agree


def headline(results: RunResults, image_dir: str = "") -> str:
    """The short Markdown summary (README, top of report.md): scores with intervals, then one line per
    claim with its estimate and interval per metric."""
    metrics = results.metrics()
    level = int(results.scoring.level * 100)
    task = results.tasks[0]
    lines = [f"**{task}**, {results.checks[task].n_test_sentences} test sentences, "
             f"seeds {sorted({s for c in results.conditions.values() for s in c.seeds})}, "
             f"{level}% paired-bootstrap intervals ({results.scoring.resamples} resamples).", "",
             "| condition | " + " | ".join(METRIC_LABEL[m] for m in metrics) + " |",
             "|---|" + "---|" * len(metrics)]
    for cond in results.condition_order or list(results.scores[task]):
        per = results.scores[task][cond]
        lines.append(f"| {cond} | " + " | ".join(fmt_score(per[m]) for m in metrics) + " |")
    lines += ["", "| paper claim | condition | " + " | ".join(METRIC_LABEL[m] for m in metrics) + " |",
              "|---|---|" + "---|" * len(metrics)]
    for c in results.claims:
        if c.task == task and c.per_metric:
            cells = [_headline_cell(c.per_metric[m]) for m in metrics]
            lines.append(f"| {c.claim.replace('_', ' ')} | {c.condition} | " + " | ".join(cells) + " |")
    counts = robustness_counts(results)
    lines += ["", f"Verdicts: {counts['robust']} robust (**bold**: findings), {counts['fragile']} fragile (leads, "
                  f"not findings), {counts['inconclusive']} inconclusive. (k/n seeds): how many seeds agree alone."]
    if image_dir is not None:
        lines += ["", f"![scores]({image_dir}scores.png)"]
    return "\n".join(lines) + "\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def markdown_text(text: str) -> str:
    """User text (a run name) as literal Markdown: no raw HTML, no links, no emphasis, one line."""
    text = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", html.escape(text, quote=False))


def to_markdown(bl: list[tuple]) -> str:
    lines = []
    for blk in bl:
        if blk[0] == "h":
            lines += ["#" * blk[1] + " " + blk[2] + (markdown_text(blk[3]) if len(blk) > 3 else ""), ""]
        elif blk[0] == "p":
            lines += [blk[1], ""]
        elif blk[0] == "img":
            lines += [f"![{blk[1].removesuffix('.png')}]({blk[1]})", ""]
        else:
            header, rows = blk[1], blk[2]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows]
            lines.append("")
    return "\n".join(lines)


def to_html(bl: list[tuple], title: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:75em;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:.2em .5em;font-size:90%}</style></head><body>"]
    for blk in bl:
        if blk[0] == "h":
            parts.append(f"<h{blk[1]}>{html.escape(blk[2] + (blk[3] if len(blk) > 3 else ''))}</h{blk[1]}>")
        elif blk[0] == "p":
            parts.append(f"<p>{html.escape(blk[1])}</p>")
        elif blk[0] == "img":
            parts.append(f"<img src='{html.escape(blk[1])}' alt='{html.escape(blk[1])}' style='max-width:100%'>")
        else:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in blk[1]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in blk[2]]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def plot(results: RunResults, path: Path) -> None:
    metrics = results.metrics()
    task = results.tasks[0]
    per = results.scores[task]
    conds = list(per)
    fig, axes = panels(len(metrics), 0.35 * len(conds) + 1.8)
    for ax, m in zip(axes[0], metrics, strict=False):
        vals = [per[c][m].score for c in conds]
        err = [[v - per[c][m].ci_low for c, v in zip(conds, vals, strict=False)],
               [per[c][m].ci_high - v for c, v in zip(conds, vals, strict=False)]]
        colors = ["tab:green" if c == "real" else "tab:red" if c.startswith("regurg_") else "tab:blue" for c in conds]
        ax.barh(range(len(conds)), vals, xerr=err, color=colors, capsize=3)
        ax.set_yticks(range(len(conds)), conds if ax is axes[0][0] else [""] * len(conds))
        ax.invert_yaxis()
        ax.set_title(metric_title(m))
    fig.suptitle(f"{task}: score per condition, {int(results.scoring.level * 100)}% bootstrap CI")
    save_figure(fig, path)


def plot_sizes(results: RunResults, path: Path) -> bool:
    """Score vs training size: the real ladder and each generator's ladder (the full-size students last)."""
    task, conds = results.tasks[0], results.conditions
    per = results.scores[task]
    full = results.data.matched_pairs
    lines: dict[str, list[tuple[int, dict[str, RunScore]]]] = {}
    for cond, info in conds.items():
        if info.kind == "ladder":
            lines.setdefault(info.generator or "real", []).append((info.size, per[cond]))
        elif info.kind in ("real", "regurg") and full:
            lines.setdefault(info.generator or "real", []).append((full, per[cond]))
    if not any(info.kind == "ladder" for info in conds.values()):
        return False
    metrics = results.metrics()
    fig, axes = panels(len(metrics), 3.6)
    for ax, m in zip(axes[0], metrics, strict=True):
        for name, pts in sorted(lines.items(), key=lambda kv: kv[0] != "real"):
            pts.sort(key=lambda t: t[0])
            x = [p[0] for p in pts]
            y = [p[1][m].score for p in pts]
            ax.plot(x, y, marker="o", label="human targets" if name == "real" else f"{name} targets",
                    color="tab:green" if name == "real" else None)
            ax.fill_between(x, [p[1][m].ci_low for p in pts], [p[1][m].ci_high for p in pts], alpha=0.15)
        ax.set_xlabel("training pairs")
        ax.set_title(metric_title(m))
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{task}: score vs training size, {int(results.scoring.level * 100)}% bootstrap CI")
    save_figure(fig, path)
    return True


def plot_recovery(results: RunResults, path: Path) -> bool:
    """R per mitigation (and fraction/mix condition) with its interval, one panel per metric."""
    task = results.tasks[0]
    rec = results.recovery[task]
    metrics = results.metrics()
    rows = [(f"{c} vs {b}" if len(bases) > 1 else c, bases[b]) for c, bases in rec.items() for b in bases]
    if not rows or not any(e[m].estimate is not None for _, e in rows for m in metrics):
        return False
    fig, axes = panels(len(metrics), 0.4 * len(rows) + 1.8)
    for ax, m in zip(axes[0], metrics, strict=True):
        for i, (_, eff) in enumerate(rows):
            e = eff[m]
            if e.estimate is None:
                ax.annotate("undefined (real not significantly better)" if e.status == "no_gap" else e.status,
                            (-1.4, i), fontsize=8, va="center", color="grey")
                continue
            lo = e.ci_low if e.ci_low is not None else -10.0
            hi = e.ci_high if e.ci_high is not None else 10.0
            ax.errorbar([e.estimate], [i], xerr=[[e.estimate - lo], [hi - e.estimate]], fmt="o",
                        color="tab:blue" if e.status == OK else "tab:grey", capsize=3)
        ax.axvline(0, color="tab:red", lw=0.8)
        ax.axvline(1, color="tab:green", lw=0.8, ls="--")
        ax.set_xlim(-1.5, 2.5)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows] if ax is axes[0][0] else [""] * len(rows))
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_title(f"R on {METRIC_LABEL[m]} (0 = regurg, 1 = real)")
    fig.suptitle(f"{task}: recovery of the real-vs-regurgitated gap")
    save_figure(fig, path)
    return True


def write_reports(results: RunResults, out: Path) -> RunResults:
    """Draw the plots, write report.md, report.html and results.json (its serialisation) into ``out``; return the
    results with the plots drawn recorded."""
    plot(results, out / "scores.png")
    plots = ["scores.png"]
    if plot_sizes(results, out / "sizes.png"):
        plots.append("sizes.png")
    if plot_recovery(results, out / "recovery.png"):
        plots.append("recovery.png")
    diag = results.diagnostics
    if diag is not None and diag.plot and (out / diag.plot).is_file():
        shutil.copyfile(out / diag.plot, out / "diagnostics.png")
        plots.append("diagnostics.png")
    results = results.model_copy(update={"plots": plots})
    if results.collapse is not None:
        from regurg_bench.protocol.collapse import write_plots

        write_plots(results.collapse, out)
    bl = blocks(results)
    for name, text in (("report.md", to_markdown(bl)), ("report.html", to_html(bl, results.name))):
        with atomic_write(out / name) as handle:
            handle.write(text)
    with atomic_write(out / "results.json") as handle:  # sorted keys, as every results.json is written
        json.dump(results.to_data(), handle, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return results
