"""Throughput of each diagnostic (sentences/s) on Bible en->es pairs, human vs one generated condition.

The generated condition is Apertium's output (``apertium -u eng-spa``, Debian packages ``apertium`` and
``apertium-eng-spa``) when it is installed, else the human targets with every 4th word dropped (a
stand-in; the name says which). Each diagnostic runs on both conditions, as ``diagnose()`` does: the
human one alone, the generated one against the human one. "sentences/s" counts the sentences handed to
it (the reference-based one sees only the generated condition). Median of ``--repeats`` runs; the
similarity encoder is loaded before timing (its load time is printed separately) and the score cache is
off, so every cosine is computed. CPU time on a shared machine is noisy: compare runs on one machine.

    python benchmarks/diagnostics_speed.py [--pairs 5000] [--repeats 3] [--similarity-pairs 1000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ["REGURG_BENCH_SCORE_CACHE"] = "0"  # before the metrics package reads it


def generated_targets(pairs) -> tuple[str, list[str]]:
    """(condition name, targets): Apertium's translations, or a word-dropping stand-in."""
    if shutil.which("apertium"):
        text = "\n".join(" ".join(p.source.split()) for p in pairs) + "\n"
        proc = subprocess.run(["apertium", "-u", "eng-spa"], input=text, capture_output=True, text=True)
        lines = proc.stdout.split("\n")[:len(pairs)]
        if proc.returncode == 0 and len(lines) == len(pairs):
            return "regurg_apertium", [" ".join(line.split()) for line in lines]
        print(f"apertium failed ({proc.returncode}): {proc.stderr[-300:]}; using the stand-in", file=sys.stderr)
    return "regurg_worddrop", [" ".join(w for i, w in enumerate(p.target.split()) if i % 4 != 3) for p in pairs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--similarity-pairs", type=int, default=1000,
                        help="pairs for the (slow) neural similarity; 0 skips it")
    args = parser.parse_args()

    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.diagnostics import DEFAULT_DIAGNOSTICS, DiagnosticUnavailable, diagnose
    from regurg_bench.diagnostics.diversity import count_tokens
    from regurg_bench.diagnostics.runner import build_diagnostics

    real = load_bible_pairs("en-es", "train")[:args.pairs]
    name, targets = generated_targets(real)
    gen = [dataclasses.replace(p, target=t) for p, t in zip(real, targets, strict=True)]
    budget = min(count_tokens(real), count_tokens(gen))
    print(f"{len(real):,} Bible en->es pairs (train), human vs {name}; token budget {budget:,}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machine: timings are noisy)")

    rows = []
    for diag_name in DEFAULT_DIAGNOSTICS:
        n = args.similarity_pairs if diag_name == "similarity" else len(real)
        if n <= 0:
            continue
        r, g = real[:n], gen[:n]
        times, note = [], ""
        for _ in range(1 if diag_name == "similarity" else args.repeats):
            diag = build_diagnostics([diag_name], token_budget=budget if n == len(real) else None)[0]
            if diag_name == "similarity":
                diag.max_pairs = None  # time every pair given, no sampling
            if diag_name == "reference":
                note = f"TER on {min(n, diag.ter_max_pairs or n):,} of {n:,} pairs (ter_max_pairs)"
            if diag_name == "similarity":
                try:
                    started = time.perf_counter()
                    diag.compute(r[-1:], None)  # load the encoder outside the timing
                    note = f"encoder load {time.perf_counter() - started:.1f} s, not counted"
                except DiagnosticUnavailable as why:
                    note = str(why)
                    break
            if diag_name == "language":
                diag.compute(r[:2], None)  # load the language-ID model outside the timing
            started = time.perf_counter()
            done = 0
            if not diag.needs_reference:
                diag.compute(r, None)
                done += len(r)
            diag.compute(g, r)
            done += len(g)
            times.append(done / (time.perf_counter() - started))
        rate = f"{statistics.median(times):>10,.0f}" if times else "       n/a"
        rows.append((diag_name, n, rate, note))
    print(f"\n{'diagnostic':<14}{'pairs':>7}  {'sentences/s':>11}  notes")
    for diag_name, n, rate, note in rows:
        print(f"{diag_name:<14}{n:>7,}  {rate:>11}  {note}")

    started = time.perf_counter()
    names = [d for d in DEFAULT_DIAGNOSTICS if d != "similarity"]
    diagnose({"real": real, name: gen}, diagnostics=names)
    elapsed = time.perf_counter() - started
    print(f"\ndiagnose() end to end without similarity: {elapsed:.1f} s for 2 x {len(real):,} sentences "
          f"= {2 * len(real) / elapsed:,.0f} sentences/s")


if __name__ == "__main__":
    main()
