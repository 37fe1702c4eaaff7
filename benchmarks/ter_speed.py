"""TER sentence statistics of a finished run: sacrebleu's own edit distance against the row-wise one.

    python benchmarks/ter_speed.py runs/protocol/default [--students 27]

For every evaluated student of the run (its logged samples, every task), computes sacrebleu's TER sentence
statistics twice in this process, one thread, no cache: with sacrebleu's ``BeamEditDistance`` and inside
:func:`regurg_bench.scoring.fast_ter.fast_ter`. Prints seconds for each, their ratio, and how many
sentences' statistics are identical (all of them, or the change is wrong). The machine line (CPU, fp32
matmul rate) comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def machine_line() -> str:
    from regurg_bench.protocol.estimate import machine_id, matmul_gflops

    return f"machine: {machine_id()}, {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s (torch)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--students", type=int, default=None, help="only the first N students (sorted)")
    args = parser.parse_args()

    from regurg_bench.protocol.report_parts import load_samples
    from regurg_bench.scoring.fast_ter import fast_ter
    from regurg_bench.scoring.sentence_stats import sentence_stats

    print(machine_line(), flush=True)
    markers = sorted(args.run.glob("evals/*/done.json"))[:args.students]
    slow_s = fast_s = 0.0
    same = total = 0
    for marker in markers:
        record = json.loads(marker.read_text(encoding="utf-8"))
        for samples in record["samples_files"].values():
            _, hyps, refs = load_samples(marker.parent, samples)
            t = time.perf_counter()
            with _sacrebleus_own():
                slow = sentence_stats("ter", hyps, refs)
            t1 = time.perf_counter()
            with fast_ter():
                fast = sentence_stats("ter", hyps, refs)
            t2 = time.perf_counter()
            slow_s, fast_s = slow_s + t1 - t, fast_s + t2 - t1
            same += int((slow == fast).all(axis=1).sum())
            total += len(hyps)
            print(f"{record['student']:>28}: sacrebleu {t1 - t:6.2f} s | row-wise {t2 - t1:6.2f} s | "
                  f"identical {int((slow == fast).all(axis=1).sum())}/{len(hyps)}", flush=True)
    print(f"{len(markers)} students, {total} sentences: sacrebleu {slow_s:.1f} s, row-wise {fast_s:.1f} s "
          f"({slow_s / max(fast_s, 1e-9):.2f}x); identical statistics {same}/{total}", flush=True)
    if same != total:
        raise SystemExit(1)


class _sacrebleus_own:
    """sentence_stats enters fast_ter itself: pretend it is unsupported for the reference timing."""

    def __enter__(self):
        from regurg_bench.scoring import fast_ter

        self._saved = fast_ter.CHECKED_SACREBLEU
        fast_ter.CHECKED_SACREBLEU = ("no release",)

    def __exit__(self, *exc):
        from regurg_bench.scoring import fast_ter

        fast_ter.CHECKED_SACREBLEU = self._saved


if __name__ == "__main__":
    main()
