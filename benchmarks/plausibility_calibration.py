"""The leaderboard's plausibility rules on real runs: what honest runs measure, and what forged ones raise.

    python benchmarks/plausibility_calibration.py RUN_DIR [RUN_DIR ...] [--forge] [--resamples N]

For each honest run folder: the best sentence chrF of any hypothesis, the largest near-copy share, the
largest above-REAL z (and its gain in points) and outlier-seed z per metric, and the flags `submit` gives
(regurg_bench/leaderboard/rules.py). With --forge, the first run is copied and forged as the issue's
adversary did (its logged samples changed, then every number recomputed by the project's own scoring,
regurg_bench/testing/forgery.py), once per variant: every third hypothesis of m1_topk_self its reference
minus the last word; paraphrased references (first two words swapped, lower case, no final punctuation) in
one mitigation; 5 % and 30 % exact copies in one condition; one mitigation's outputs replaced by Apertium's
translations of the test sources (a real, better MT system: no copy, far above REAL). Each prints the
rule that refuses it or the flags it gets. Slow: each forgery re-scores 27 students with the run's 10,000
bootstrap resamples (~2-3 min on 2 cores when quiet).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from regurg_bench.leaderboard import rules
from regurg_bench.leaderboard.schema import SubmissionError
from regurg_bench.leaderboard.submit import load_run, make_entry
from regurg_bench.protocol.estimate import machine_id, matmul_gflops
from regurg_bench.testing.forgery import forge, read_rows


def honest_stats(run: Path) -> None:
    from sacrebleu.metrics import CHRF

    res, _ = load_run(run)
    chrf, best = CHRF(), 0.0
    for s in res.students.values():
        for rel in s.samples.values():
            rows = read_rows(run / rel)
            best = max(best, max(chrf.sentence_score(r["filtered_resps"][0], [r["target"]]).score for r in rows))
    print(f"{run}: best sentence chrF of any hypothesis {best:.1f} (near-copy from {rules.NEAR_COPY_CHRF:g})")
    for task in res.tasks:
        for metric in res.scores[task]["real"]:
            ar = rules.above_real(res.scores[task], metric)
            z, gain = max(ar.values())
            oz = rules.outlier_seed_z(res.scores[task], metric)
            print(f"  {task} {metric}: above-REAL max z {z:.2f} (gain {gain:+.2f} points); outlier-seed max z "
                  f"{max(oz.values()) if oz else float('nan'):.2f}")
    t = time.perf_counter()
    entry = make_entry(run, "calibration", "honest")
    print(f"  submit: accepted, flags {entry.flags or 'none'} ({time.perf_counter() - t:.0f} s)")


def _only(condition: str, change):
    return lambda cond, _seed, rows: change(rows) if cond == condition else rows


def _minus_last_word(rows):
    for r in sorted(rows, key=lambda r: r["doc_id"])[::3]:
        r["filtered_resps"] = [" ".join(r["target"].split()[:-1])]
    return rows


def _paraphrase(rows):
    for r in rows:
        words = r["target"].rstrip(".;:!?").lower().split()
        r["filtered_resps"] = [" ".join(words[1:2] + words[:1] + words[2:])]
    return rows


def _copies(share):
    def change(rows):
        for r in sorted(rows, key=lambda r: r["doc_id"])[: round(share * len(rows))]:
            r["filtered_resps"] = [r["target"]]
        return rows
    return change


def _apertium(rows):
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.generation import ApertiumGenerator

    sources = [p.source for p in load_bible_pairs("en-es", "test")]
    with ApertiumGenerator() as apertium:
        better = [r.text for r in apertium.generate(sources, "en", "es")]
    for r in rows:
        r["filtered_resps"] = [better[r["doc_id"]]]
    return rows


VARIANTS = {
    "every third m1_topk_self hypothesis = reference minus last word": ("m1_topk_self", _minus_last_word),
    "paraphrased references in m3_detector_self": ("m3_detector_self", _paraphrase),
    "5% exact copies in m1_order_self": ("m1_order_self", _copies(0.05)),
    "30% exact copies in regurg_self": ("regurg_self", _copies(0.30)),
    "m2_multigen boosted: Apertium's translations of the test sources": ("m2_multigen", _apertium),
}


def forged(run: Path) -> None:
    for label, (condition, change) in VARIANTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            dst = Path(tmp) / "run"
            dst.mkdir()
            shutil.copy(run / "results.json", dst / "results.json")
            shutil.copytree(run / "evals", dst / "evals")
            t = time.perf_counter()
            forge(dst, _only(condition, change))
            try:
                entry = make_entry(dst, "calibration", "forger")
                outcome = f"accepted, flags {entry.flags or 'none'}"
            except SubmissionError as err:
                outcome = f"refused: {err}"
            print(f"- {label}: {outcome} ({time.perf_counter() - t:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--forge", action="store_true", help="also forge the first run (slow)")
    args = ap.parse_args()
    print(f"machine: {machine_id()}; matmul fp32 {matmul_gflops():.0f} GFLOP/s")
    print(json.dumps({k: v for k, v in vars(rules).items() if k.isupper() and isinstance(v, int | float)}))
    for run in args.runs:
        honest_stats(run)
    if args.forge:
        forged(args.runs[0])


if __name__ == "__main__":
    main()
