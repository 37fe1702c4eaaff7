"""Local vs Ray executor on the tiny protocol: wall time, and Ray's overhead per task.

    python benchmarks/executors.py [--workers 2]

Runs the tests' tiny protocol (tests/data/tiny_protocol.yaml: scripted generators, the scratch:test
student, 26 students) from an empty run folder twice, once with ``--executor local`` and once with
``--executor ray`` on a local cluster of ``--workers`` CPUs, checks the two results.json give the same
numbers, and prints the wall times, Ray's start-up, and its overhead per task measured on no-op tasks.
Also prints the machine's fp32 matmul rate, so the times can be read against the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _numbers(r: dict) -> dict:
    return {k: r[k] for k in ("scores", "degradation", "recovery", "differences", "condition_order")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray cluster")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # the tiny protocol's `scripted` generators are test doubles, registered as a plug-in (as in the tests)
    os.environ["REGURG_BENCH_PLUGINS"] = ",".join(
        [m for m in os.environ.get("REGURG_BENCH_PLUGINS", "").split(",") if m] + ["regurg_bench.testing"])
    import ray

    from regurg_bench.protocol.config import load_protocol_config
    from regurg_bench.protocol.estimate import matmul_gflops
    from regurg_bench.protocol.run import run_protocol

    cfg = load_protocol_config(ROOT / "tests" / "data" / "tiny_protocol.yaml")
    tmp = Path(tempfile.mkdtemp(prefix="regurg-executors-"))
    walls, results = {}, {}
    for name in ("local", "ray"):
        started = time.perf_counter()
        results[name] = run_protocol(cfg, tmp / name, say=lambda _m: None, executor=name, num_cpus=args.workers)
        walls[name] = time.perf_counter() - started
    n_tasks = len(results["local"]["steps"]) - 2  # score and report run in the driver
    same = _numbers(results["local"]) == _numbers(results["ray"])

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started
    noop = ray.remote(lambda: None)
    ray.get([noop.remote() for _ in range(10)])  # warm the workers
    started = time.perf_counter()
    ray.get([noop.remote() for _ in range(200)])
    per_noop = (time.perf_counter() - started) / 200
    ray.shutdown()

    print(f"cores: {os.cpu_count()}; fp32 matmul {matmul_gflops('float32'):.0f} GFLOP/s; "
          f"tiny protocol: {len(results['local']['students'])} students, {n_tasks} executor tasks")
    print(f"{'executor':<10}{'wall s':>9}")
    for name, wall in walls.items():
        print(f"{name:<10}{wall:>9.1f}")
    print(f"ray - local: {walls['ray'] - walls['local']:+.1f} s = {(walls['ray'] - walls['local']) / n_tasks:+.2f} s per task "
          f"(includes the cluster's start-up, {startup:.1f} s here, and each worker's imports)")
    print(f"ray no-op task round trip: {per_noop * 1000:.1f} ms; same numbers: {same}")
    print(json.dumps({"wall_s": walls, "ray_startup_s": startup, "noop_ms": per_noop * 1000, "same_numbers": same}))


if __name__ == "__main__":
    main()
