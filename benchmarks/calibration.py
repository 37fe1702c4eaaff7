"""The scoring's false-positive rate and power, from more simulated runs than the tests afford.

    python benchmarks/calibration.py [--sims 1000] [--resamples 1000]

Prints, for k = 2, 3, 5 seeds, with the tested condition's seeds varying or identical (one student copied k
times): the share of null runs whose D, R and Δ verdicts are holds/contradicted (false positives, ≤ 5 %
wanted), the power at D = 0.05, R = 0.5, Δ = 3 TER points, and how often a robust or fragile verdict is
repeated by a second run with new seeds. The simulation model is regurg_bench/scoring/simulation.py; the
scoring is the protocol's own. The machine line (cores, torch matmul rate) is for reading the times.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from regurg_bench.protocol.estimate import matmul_gflops
from regurg_bench.scoring.simulation import CLAIMS, Noise, Truth, rejection_rates, replication

IDENTICAL = frozenset({"regurg_a", "m1_topk_b", "fraction_real_050"})
EFFECT = Truth(regurg_a=63.0, m1_topk_b=65.0, fraction_real_050=57.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s (torch)")
    mc = 2 * math.sqrt(0.05 * 0.95 / args.sims)
    print(f"{args.sims} simulated runs per row, {args.resamples} resamples; Monte-Carlo ±{mc:.3f} (2 SE) at 5 %")
    print(f"{'k':>2} {'seeds':>9} | " + " ".join(f"FPR {c:>3}" for c in CLAIMS) + " | "
          + " ".join(f"power {c:>2}" for c in CLAIMS) + " | s/run")
    for k in (2, 3, 5):
        for identical in (False, True):
            noise = Noise(identical=IDENTICAL if identical else frozenset())
            started = time.perf_counter()
            null = rejection_rates(Truth(), noise, k, args.sims, resamples=args.resamples, seed=k)
            power = rejection_rates(EFFECT, noise, k, args.sims, resamples=args.resamples, seed=100 + k)
            per_run = (time.perf_counter() - started) / (2 * args.sims)
            print(f"{k:>2} {'identical' if identical else 'vary':>9} | "
                  + " ".join(f"{null[c]['decided']:>7.3f}" for c in CLAIMS) + " | "
                  + " ".join(f"{power[c]['decided']:>8.2f}" for c in CLAIMS) + f" | {per_run:.3f}")
    rng = np.random.default_rng(7)
    truths = [Truth(regurg_a=60 + rng.uniform(0, 6), m1_topk_b=70 - rng.uniform(0, 8),
                    fraction_real_050=60 - rng.uniform(0, 6)) for _ in range(args.sims // 2)]
    for k in (3, 5):
        tally = replication(truths, Noise(), k, resamples=args.resamples, seed=k)
        for cls, t in tally.items():
            n = sum(t.values())
            if n:
                print(f"replication k={k}: {cls:>7} verdicts {n:>4}: second run same {t['same'] / n:.3f}, "
                      f"inconclusive {t['inconclusive'] / n:.3f}, opposite {t['opposite'] / n:.3f}")


if __name__ == "__main__":
    main()
