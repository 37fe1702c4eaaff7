"""Wall time of the embedded default protocol (`regurg-bench run`), stage by stage.

    python benchmarks/protocol_default.py [--out DIR] [--fresh-cache]

``--fresh-cache`` points REGURG_BENCH_CACHE at an empty folder first, so the embedded corpus and the
Apertium generations are rebuilt as on a fresh machine (the first run on a new machine pays for them).
Prints the stage table the report also carries (``results.json`` ``timings_s``) and the total.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="run folder (default: a new temporary folder)")
    ap.add_argument("--fresh-cache", action="store_true", help="start from an empty regurg-bench cache")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="regurg-protocol-")) / "run"
    env = dict(os.environ)
    if args.fresh_cache:
        env["REGURG_BENCH_CACHE"] = tempfile.mkdtemp(prefix="regurg-cache-")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "regurg_bench.cli", "run", "--out", str(out)], check=True, env=env)
    wall = time.perf_counter() - started
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    print(f"\ncores: {os.cpu_count()}, fresh cache: {args.fresh_cache}, run folder: {out}")
    print(f"{'stage':<14}{'seconds':>10}")
    for stage, seconds in results["timings_s"].items():
        print(f"{stage:<14}{seconds:>10.1f}")
    print(f"{'process wall':<14}{wall:>10.1f}  (incl. interpreter start-up and imports)")


if __name__ == "__main__":
    main()
