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
import math
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.scoring import degradation, paired_bootstrap, recovery
from regurg_bench.scoring.bootstrap import percentile_interval
from regurg_bench.scoring.effects import NO_GAP, NOT_SIGNIFICANT, OK, UNDEFINED

SCHEMA = "regurg-bench/results/v1"
METRIC_LABEL = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def load_samples(eval_dir: str | Path, samples_file: str) -> tuple[list[int], list[str], list[str]]:
    rows = [json.loads(line) for line in (Path(eval_dir) / samples_file).read_text(encoding="utf-8").splitlines()
            if line.strip()]
    rows.sort(key=lambda r: r["doc_id"])
    return [r["doc_id"] for r in rows], [r["filtered_resps"][0] for r in rows], [r["target"] for r in rows]


def hyps_from_evals(students: dict[str, Any], evals: dict[str, Any], task: str
                    ) -> tuple[dict[str, list[list[str]]], list[str], dict[str, list[int]]]:
    """{condition: [hyps of seed 0, seed 1, ...]}, the shared references, and each condition's seeds."""
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
    hyps_by_cond = {c: [h for _, h in sorted(v, key=lambda t: t[0])] for c, v in by_cond.items()}
    seeds = {c: sorted(seed for seed, _ in v) for c, v in by_cond.items()}
    return hyps_by_cond, refs or [], seeds


def _baselines(kind: str, generator: str | None, gens: list[str]) -> list[str]:
    return [generator] if generator else gens


def score_run(cfg, out: Path, students: dict[str, Any], evals: dict[str, Any], tasks: list[str],
              derived: dict[str, Any], manifest: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    sc = cfg.scoring
    gens = list(cfg.build.generators)
    conditions = {}
    for s in students.values():
        conditions.setdefault(s.condition, {"kind": s.kind, "generator": s.generator, "seeds": []})["seeds"].append(s.seed)
    scores: dict[str, Any] = {}
    degr: dict[str, Any] = {}
    recov: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    for task in tasks:
        hyps_by_cond, refs, _ = hyps_from_evals(students, evals, task)
        scores[task], degr[task], recov[task] = {}, {}, {}
        max_diff = 0.0
        for metric in sc.metrics:
            bs = paired_bootstrap(metric, hyps_by_cond, refs, n=sc.resamples, seed=sc.seed)
            for cond in hyps_by_cond:
                lo, hi = percentile_interval(bs.replicates[cond], sc.level)
                reported = [evals[f"{cond}-s{seed}"]["reported"][task][f"{metric},none"]
                            for seed in sorted(conditions[cond]["seeds"])]
                for a, b in zip(bs.per_seed[cond], reported, strict=False):
                    max_diff = max(max_diff, abs(a - b))
                scores[task].setdefault(cond, {})[metric] = {
                    "score": bs.point[cond], "ci_low": lo, "ci_high": hi, "per_seed": bs.per_seed[cond],
                    "lm_eval_reported": reported}
            for g in gens:
                degr[task].setdefault(f"regurg_{g}", {})[metric] = degradation(
                    bs, "real", f"regurg_{g}", sc.level).to_dict()
            for cond, info in conditions.items():
                if cond == "real" or info["kind"] == "regurg":
                    continue
                for g in _baselines(info["kind"], info["generator"], gens):
                    recov[task].setdefault(cond, {}).setdefault(f"regurg_{g}", {})[metric] = recovery(
                        bs, "real", f"regurg_{g}", cond, sc.level).to_dict()
        checks[task] = {"n_test_sentences": len(refs), "max_abs_diff_vs_lm_eval": max_diff,
                        "equal_to_lm_eval": max_diff <= 1e-9}
    first_eval = next(iter(evals.values()))
    return {
        "schema": SCHEMA,
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
                              "percentile intervals", "resamples": sc.resamples, "level": sc.level, "seed": sc.seed},
        "data": {"build_config_hash": manifest["config_hash"], "corpus": manifest["corpus"],
                 "generators": manifest["generators"],
                 "split_fingerprints": {k: v["fingerprint"] for k, v in manifest["conditions"].items()}},
        "conditions": conditions,
        "students": {name: {"condition": s.condition, "seed": s.seed, "key": s.key, "model_id": str(s.dir),
                            "split": str(s.split), "curriculum": str(s.curriculum) if s.curriculum else None,
                            "forget": str(s.forget) if s.forget else None, "base_student": s.base_student,
                            "base_model": (cfg.train.get("base_model", "scratch:tiny") if not s.base_student
                                           else str(students[s.base_student].dir)),
                            "samples": {t: str(Path(evals[name]["dir"]) / f) for t, f in
                                        evals[name]["samples_files"].items()},
                            "results_file": str(Path(evals[name]["dir"]) / evals[name]["results_file"])}
                     for name, s in students.items()},
        "mitigation_data": {k: {kk: vv for kk, vv in v.items()} for k, v in derived.items()},
        "scores": scores,
        "degradation": degr,
        "recovery": recov,
        "claims": claims(scores, degr, recov, conditions, gens, sc.metrics, notes),
        "checks": checks,
        "notes": notes,
    }


def _verdict(effect: dict[str, Any]) -> str:
    st = effect["status"]
    if st == OK:
        return "holds" if effect["estimate"] > 0 else "contradicted"
    if st == NOT_SIGNIFICANT:
        return "inconclusive (interval contains 0)"
    if st == NO_GAP:
        return "undetermined (no significant real-vs-regurg gap)"
    return "undefined"


def _fmt_effect(effect: dict[str, Any]) -> str:
    if effect["estimate"] is None:
        return f"n/a ({effect['status']})"
    lo, hi = effect["ci_low"], effect["ci_high"]
    ci = f"[{_f(lo)}, {_f(hi)}]"
    return f"{effect['estimate']:.3f} {ci}" + ("" if effect["status"] == OK else f" ({effect['status']})")


def _f(x: float | None) -> str:
    return "±inf" if x is None else f"{x:.3f}"


CLAIM_TEXT = {
    "degradation": "Training on regurgitated targets degrades the student vs real targets (same sources, same budget): D > 0",
    "m1_order": "M1: ordering generated pairs by reference-free quality (high -> low) recovers part of the gap: R > 0",
    "m1_topk": "M1: keeping only the top-quality generated pairs recovers part of the gap: R > 0",
    "m2_multigen": "M2: mixing several generators at equal total size recovers part of the gap: R > 0",
    "m3_detector": "M3: ordering generated pairs by a detector's P(human) recovers part of the gap: R > 0",
    "m4_unlearn": "M4 (extension): unlearning the least human-like pairs recovers part of the gap: R > 0",
}


def claims(scores, degr, recov, conditions, gens, metrics, notes) -> list[dict[str, Any]]:
    out = []
    for task in degr:
        for g in gens:
            per = {m: {"verdict": _verdict(e), **e} for m, e in degr[task][f"regurg_{g}"].items()}
            out.append({"claim": "degradation", "text": CLAIM_TEXT["degradation"], "task": task,
                        "condition": f"regurg_{g}", "generator": g, "per_metric": per})
        for cond, info in conditions.items():
            if info["kind"] not in CLAIM_TEXT:
                continue
            for base, per_metric in recov[task].get(cond, {}).items():
                per = {m: {"verdict": _verdict(e), **e} for m, e in per_metric.items()}
                out.append({"claim": info["kind"], "text": CLAIM_TEXT[info["kind"]], "task": task,
                            "condition": cond, "generator": base.removeprefix("regurg_"), "per_metric": per})
    if not any(c["claim"] == "m2_multigen" for c in out):
        out.append({"claim": "m2_multigen", "text": CLAIM_TEXT["m2_multigen"], "task": None, "condition": None,
                    "generator": None, "per_metric": {},
                    "verdict": "not tested (needs >= 2 generators)"})
    return out


# ---------------------------------------------------------------------------------------- render
def blocks(results: dict[str, Any]) -> list[tuple]:
    """The report as blocks: ("h", level, text) | ("p", text) | ("table", header, rows) | ("img", path)."""
    metrics = results["config"]["scoring"]["metrics"]
    level = int(results["scoring"]["level"] * 100)
    b: list[tuple] = [("h", 1, f"regurg-bench protocol report: {results['name']}"),
                      ("p", f"Config hash `{results['config_hash']}`; lm-eval {results['lm_eval_version']}; "
                            f"tasks {', '.join(results['tasks'])}; {results['scoring']['resamples']} paired bootstrap "
                            f"resamples, {level}% percentile intervals. Scores are sacrebleu corpus scores recomputed "
                            "from the logged lm-eval samples (checked equal to lm-eval's: "
                            + ", ".join(f"{t}: {'yes' if c['equal_to_lm_eval'] else 'NO'}, "
                                        f"{c['n_test_sentences']} sentences" for t, c in results["checks"].items())
                            + "). D = (S_real - S_regurg)/S_real (sign flipped for TER, so D > 0 always means real "
                              "data is better); R = (S_m - S_regurg)/(S_real - S_regurg).")]
    for task in results["tasks"]:
        b.append(("h", 2, f"Scores: {task}"))
        header = ["condition", "seeds"] + [f"{METRIC_LABEL[m]} [{level}% CI]" for m in metrics] + \
                 [f"D or R ({METRIC_LABEL[m]})" for m in metrics]
        rows = []
        for cond, per in results["scores"][task].items():
            info = results["conditions"][cond]
            row = [cond, ",".join(map(str, info["seeds"]))]
            row += [f"{per[m]['score']:.2f} [{per[m]['ci_low']:.2f}, {per[m]['ci_high']:.2f}]" for m in metrics]
            if info["kind"] == "regurg":
                row += ["D " + _fmt_effect(results["degradation"][task][cond][m]) for m in metrics]
            elif cond in results["recovery"][task]:
                base = results["recovery"][task][cond]
                row += ["; ".join(f"R vs {k}: " + _fmt_effect(v[m]) for k, v in base.items()) if len(base) > 1
                        else "R " + _fmt_effect(next(iter(base.values()))[m]) for m in metrics]
            else:
                row += ["(reference)"] * len(metrics)
            rows.append(row)
        b.append(("table", header, rows))
    b.append(("img", "scores.png"))
    b.append(("h", 2, "Paper claims"))
    rows = []
    for c in results["claims"]:
        if not c["per_metric"]:
            rows.append([c["text"], "-", c.get("verdict", "")] + [""] * 0)
            continue
        verdicts = "; ".join(f"{METRIC_LABEL[m]}: {v['verdict']}, {_fmt_effect(v)}" for m, v in c["per_metric"].items())
        rows.append([c["text"], f"{c['condition']} ({c['task']})", verdicts])
    b.append(("table", ["claim", "condition", f"verdict per metric (estimate [{level}% CI])"], rows))
    b.append(("p", "A claim *holds* when the interval lies above 0, is *contradicted* when it lies below 0, and "
                   "is *inconclusive* when it contains 0. Recovery is undefined (no number) when the real-vs-regurg "
                   "gap itself is not significant."))
    md = results.get("mitigation_data", {})
    if md:
        b.append(("h", 2, "Mitigation data"))
        rows = []
        for k, v in md.items():
            desc = {kk: vv for kk, vv in v.items() if kk != "dir"}
            rows.append([k, json.dumps(desc, sort_keys=True)])
        b.append(("table", ["step", "details"], rows))
    if results.get("notes"):
        b.append(("h", 2, "Notes"))
        b += [("p", n) for n in results["notes"]]
    if results.get("timings_s"):
        b.append(("h", 2, "Stage times"))
        b.append(("table", ["stage", "seconds"], [[k, f"{v:.1f}"] for k, v in results["timings_s"].items()]))
    b.append(("h", 2, "Provenance"))
    b.append(("table", ["student", "model", "samples"],
              [[n, s["model_id"], ", ".join(s["samples"].values())] for n, s in results["students"].items()]))
    b.append(("table", ["metric", "sacrebleu signature"], [[k, v] for k, v in results["sacrebleu_signatures"].items()]))
    return b


def to_markdown(bl: list[tuple]) -> str:
    lines = []
    for blk in bl:
        if blk[0] == "h":
            lines += ["#" * blk[1] + " " + blk[2], ""]
        elif blk[0] == "p":
            lines += [blk[1], ""]
        elif blk[0] == "img":
            lines += [f"![scores]({blk[1]})", ""]
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
            parts.append(f"<h{blk[1]}>{html.escape(blk[2])}</h{blk[1]}>")
        elif blk[0] == "p":
            parts.append(f"<p>{html.escape(blk[1])}</p>")
        elif blk[0] == "img":
            parts.append(f"<img src='{html.escape(blk[1])}' alt='scores' style='max-width:100%'>")
        else:
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in blk[1]) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in blk[2]]
            parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = results["config"]["scoring"]["metrics"]
    task = results["tasks"][0]
    per = results["scores"][task]
    conds = list(per)
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 0.35 * len(conds) + 1.8), squeeze=False)
    for ax, m in zip(axes[0], metrics, strict=False):
        vals = [per[c][m]["score"] for c in conds]
        err = [[v - per[c][m]["ci_low"] for c, v in zip(conds, vals, strict=False)],
               [per[c][m]["ci_high"] - v for c, v in zip(conds, vals, strict=False)]]
        colors = ["tab:green" if c == "real" else "tab:red" if c.startswith("regurg_") else "tab:blue" for c in conds]
        ax.barh(range(len(conds)), vals, xerr=err, color=colors, capsize=3)
        ax.set_yticks(range(len(conds)), conds if ax is axes[0][0] else [""] * len(conds))
        ax.invert_yaxis()
        ax.set_title(f"{METRIC_LABEL[m]} ({'lower' if m == 'ter' else 'higher'} is better)")
    fig.suptitle(f"{task}: score per condition, {int(results['scoring']['level'] * 100)}% bootstrap CI")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_reports(results: dict[str, Any], out: Path) -> None:
    plot(results, out / "scores.png")
    bl = blocks(results)
    for name, text in (("report.md", to_markdown(bl)), ("report.html", to_html(bl, results["name"]))):
        with atomic_write(out / name) as handle:
            handle.write(text)
    with atomic_write(out / "results.json") as handle:
        json.dump(results, handle, indent=2, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


_unused = (_finite, UNDEFINED)
