"""Wall time of the embedded default protocol (`regurg-bench run`), stage by stage.

    python benchmarks/protocol_default.py [--out DIR] [--fresh-cache] [--workers N]

``--fresh-cache`` points REGURG_BENCH_CACHE at an empty folder first, so the embedded corpus and the
Apertium generations are rebuilt as on a fresh machine (the first run on a new machine pays for them).
Prints the stage table the report also carries (``results.json`` ``timings_s``) and the total, the
machine's measured fp32 and bf16 matmul rates (torch, 1024x1024, all threads) so every time can be read
against the machine it ran on, and the run's model compute in TFLOP, counted machine-independently:
6 * parameters * input tokens for every training run (the base model's pretraining included when this
run built it), 2 * parameters * (prompt + generated) tokens for every generation and evaluation.
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
    ap.add_argument("--workers", help="regurg-bench run --workers (default: its own, auto); run once with 1 and "
                                      "once without, in the same hour, to measure what the worker processes save")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="regurg-protocol-")) / "run"
    env = dict(os.environ)
    if args.fresh_cache:
        env["REGURG_BENCH_CACHE"] = tempfile.mkdtemp(prefix="regurg-cache-")
    started = time.perf_counter()
    workers = ["--workers", args.workers] if args.workers else []
    subprocess.run([sys.executable, "-m", "regurg_bench.cli", "run", "--out", str(out), *workers], check=True, env=env)
    wall = time.perf_counter() - started
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    print(f"\ncores: {os.cpu_count()}, fresh cache: {args.fresh_cache}, run folder: {out}")
    print(f"{'stage':<14}{'seconds':>10}")
    for stage, seconds in results["timings_s"].items():
        print(f"{stage:<14}{seconds:>10.1f}")
    print(f"{'process wall':<14}{wall:>10.1f}  (incl. interpreter start-up and imports)")
    print_machine_and_compute(out, env)


def print_machine_and_compute(out: Path, env: dict[str, str]) -> None:
    """Matmul rates of this machine and the TFLOP of model compute the run did."""
    os.environ.update({k: v for k, v in env.items() if k == "REGURG_BENCH_CACHE"})
    import platform

    from transformers import AutoTokenizer

    from regurg_bench.models.base_models import BASE_MODELS, base_model_card, is_built
    from regurg_bench.protocol.estimate import matmul_gflops

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    flags = next((line for line in lscpu.splitlines() if line.startswith("Flags")), "")
    isa = "AMX" if "amx" in flags else ("AVX-512" if "avx512f" in flags else ("AVX2" if "avx2" in flags else "?"))
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")),
                 platform.processor())
    print(f"\nmachine: {model} ({isa}), {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s, "
          f"bf16 {matmul_gflops('bfloat16', n=512, reps=2):.1f} GFLOP/s (torch, best of several)")
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    train_flops, gen_flops = 0.0, 0.0
    base = results["config"]["train"].get("base_model", "")
    if base in BASE_MODELS and is_built(base):
        card = base_model_card(base)
        train_flops += 6 * card["parameters"] * card["tokens"]
        print(f"base model {base}: {card['parameters']:,} parameters, {card['tokens']:,} tokens, "
              f"{6 * card['parameters'] * card['tokens'] / 1e12:.2f} TFLOP (built by this run only with --fresh-cache)")
    tok, params = None, 0
    for st in results["students"].values():
        card = json.loads((out / st["model_id"] / "training_card.json").read_text(encoding="utf-8"))
        params = card["parameters"]
        train_flops += 6 * params * card["tokens"]
        if tok is None:
            tok = AutoTokenizer.from_pretrained(out / st["model_id"])
        for rel in st["samples"].values():
            rows = [json.loads(line) for line in (out / rel).read_text(encoding="utf-8").splitlines() if line]
            texts = [r["arguments"]["gen_args_0"]["arg_0"] + " " + r["filtered_resps"][0] for r in rows]
            gen_flops += 2 * params * sum(len(ids) for ids in tok(texts)["input_ids"])
    for gen in results["data"]["generators"]:
        split = out / "splits" / f"regurg_{gen}.jsonl"
        info = results["data"]["generators"][gen]
        if "teacher" not in json.dumps(info) or tok is None:
            continue
        n_tokens = 0
        for f in [split, out / "heldout" / f"regurg_{gen}.jsonl"]:
            if f.is_file():
                rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line]
                n_tokens += sum(len(ids) for ids in tok([r["source"] + " " + r["target"] for r in rows])["input_ids"])
        gen_flops += 2 * params * n_tokens
    print(f"model compute: training {train_flops / 1e12:.1f} TFLOP + generation/evaluation {gen_flops / 1e12:.1f} TFLOP "
          f"= {(train_flops + gen_flops) / 1e12:.1f} TFLOP (6*N*T training, 2*N*T generation; N = all parameters)")


if __name__ == "__main__":
    main()
