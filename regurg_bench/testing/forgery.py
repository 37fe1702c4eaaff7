"""What a forger does to a finished run folder, for the tests and the calibration benchmark of the
leaderboard's rules: change the logged samples of some students, then make every file self-consistent
again with the project's own scoring (lm-eval's results files, the scores, intervals, D and R of
results.json in its condition order, the sentence count). What is left is a run that re-scoring its
evidence cannot tell from an honest one; only the plausibility rules or a re-run can."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

#: change_rows(condition, seed, rows) -> rows: one student's logged samples (lm-eval's JSON lines)
RowChange = Callable[[str, int, list[dict]], list[dict]]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def forge(run: Path, change_rows: RowChange) -> None:
    """Change every student's logged samples with ``change_rows``, then :func:`rescore` the run."""
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    for name in sorted(results["students"]):
        s = results["students"][name]
        for rel in s["samples"].values():
            rows = change_rows(s["condition"], s["seed"], read_rows(run / rel))
            write_rows(run / rel, sorted(rows, key=lambda r: r["doc_id"]))
    rescore(run)


def rescore(run: Path) -> None:
    """Recompute every number of ``run`` from its logged samples, as the protocol's scoring does."""
    from regurg_bench.evaluation.signatures import corpus_score
    from regurg_bench.scoring import paired_bootstrap
    from regurg_bench.scoring.bootstrap import percentile_interval
    from regurg_bench.scoring.matrix import matrix_effects

    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    sc, conds = results["scoring"], results["conditions"]
    gens = [c.removeprefix("regurg_") for c, info in conds.items() if info["kind"] == "regurg"]
    for task in results["tasks"]:
        metrics = list(results["scores"][task]["real"])
        by_cond: dict[str, list[tuple[int, list[str]]]] = {}
        refs: list[str] = []
        for name in sorted(results["students"]):
            s = results["students"][name]
            rows = sorted(read_rows(run / s["samples"][task]), key=lambda r: r["doc_id"])
            hyps, refs = [r["filtered_resps"][0] for r in rows], [r["target"] for r in rows]
            by_cond.setdefault(s["condition"], []).append((s["seed"], hyps))
            lm = json.loads((run / s["results_file"]).read_text(encoding="utf-8"))
            for metric in metrics:
                lm["results"][task][f"{metric},none"] = corpus_score(metric, hyps, refs)
            (run / s["results_file"]).write_text(json.dumps(lm), encoding="utf-8")
        order = results["condition_order"]
        hyps_by = {c: [h for _, h in sorted(by_cond[c])] for c in order}
        for metric in metrics:
            bs = paired_bootstrap(metric, hyps_by, refs, n=sc["resamples"], seed=sc["seed"])
            for c in order:
                lo, hi = percentile_interval(bs.replicates[c], sc["level"])
                results["scores"][task][c][metric].update(score=bs.point[c], ci_low=lo, ci_high=hi,
                                                          per_seed=bs.per_seed[c], lm_eval_reported=bs.per_seed[c])
            fx = matrix_effects(bs, conds, gens, sc["level"])
            for reg, per in results["degradation"][task].items():
                per[metric] = fx.degradation[reg].to_dict()
            for cond, bases in results["recovery"][task].items():
                for reg, per in bases.items():
                    per[metric] = fx.recovery[cond][reg].to_dict()
        results["checks"][task]["n_test_sentences"] = len(refs)
    (run / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
