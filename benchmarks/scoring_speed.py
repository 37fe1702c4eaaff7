"""Scoring of a finished protocol run, cold and warm: sacrebleu sentence statistics, then the bootstrap.

    python benchmarks/scoring_speed.py runs/protocol/default [--repeats 1]

Scores the run's logged samples exactly as its scoring step does (every task and metric of its config,
:func:`regurg_bench.scoring.matrix.score_metric` with the run's resamples and seed) three times, each with
the in-process memo cleared: **cold** (an empty statistics cache in a temporary folder: every file's
statistics computed, in the process pool), **warm** (the statistics read from that disk cache, as a
re-score, ``regurg-bench verify`` or the leaderboard verifier finds them after an evaluation computed
them), and checks that cold and warm give the same numbers. Prints seconds per phase and the machine's
fp32 matmul rate (measured before and after: a spread means other jobs shared the cores).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def _hyps(run: Path, results: dict, task: str) -> tuple[dict[str, list[list[str]]], list[str]]:
    from regurg_bench.protocol.report_parts import load_samples

    by_cond: dict[str, list[tuple[int, list[str]]]] = {}
    refs: list[str] = []
    for marker in sorted(run.glob("evals/*/done.json")):
        record = json.loads(marker.read_text(encoding="utf-8"))
        condition, seed = record["student"].rsplit("-s", 1)
        _, hyps, refs = load_samples(marker.parent, record["samples_files"][task])
        by_cond.setdefault(condition, []).append((int(seed), hyps))
    order = results.get("condition_order") or sorted(by_cond)
    return {c: [h for _, h in sorted(by_cond[c])] for c in order}, refs


def _score(run: Path, results: dict) -> tuple[float, float, list]:
    """(statistics seconds, bootstrap seconds, every condition's score) for every task and metric."""
    from regurg_bench.scoring import sentence_stats
    from regurg_bench.scoring.bootstrap import prefetch_stats
    from regurg_bench.scoring.matrix import score_metric

    sentence_stats._MEMO.clear()
    sc = results["config"]["scoring"]
    gens = [c.removeprefix("regurg_") for c, i in results["conditions"].items() if i["kind"] == "regurg"]
    stats_s = boot_s = 0.0
    numbers = []
    for task in results["tasks"]:
        hyps, refs = _hyps(run, results, task)
        t = time.perf_counter()
        prefetch_stats(sc["metrics"], hyps, refs)
        stats_s += time.perf_counter() - t
        t = time.perf_counter()
        for metric in sc["metrics"]:
            ms = score_metric(metric, hyps, refs, results["conditions"], gens, resamples=sc["resamples"],
                              seed=sc["seed"], level=sc["level"])
            numbers.append({c: (r["score"], r["ci_low"], r["ci_high"]) for c, r in ms.rows.items()})
        boot_s += time.perf_counter() - t
    return stats_s, boot_s, numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    args = parser.parse_args()
    from regurg_bench.protocol.estimate import machine_id, matmul_gflops

    results = json.loads((args.run / "results.json").read_text(encoding="utf-8"))
    before = matmul_gflops("float32")
    with tempfile.TemporaryDirectory(prefix="regurg-scoring-") as cache:
        os.environ["REGURG_BENCH_CACHE"] = cache  # an empty statistics cache: cold
        n = len(list(args.run.glob("evals/*/done.json")))
        print(f"machine: {machine_id()}; fp32 matmul {before:.0f} GFLOP/s; {n} students, "
              f"metrics {results['config']['scoring']['metrics']}, {results['config']['scoring']['resamples']} "
              f"resamples")
        cold = _score(args.run, results)
        warm = _score(args.run, results)
    print(f"cold: statistics {cold[0]:.1f} s + bootstrap and effects {cold[1]:.1f} s = {cold[0] + cold[1]:.1f} s")
    print(f"warm: statistics {warm[0]:.1f} s + bootstrap and effects {warm[1]:.1f} s = {warm[0] + warm[1]:.1f} s")
    print(f"same numbers cold and warm: {cold[2] == warm[2]}; fp32 matmul after: {matmul_gflops('float32'):.0f} GFLOP/s")


if __name__ == "__main__":
    main()
