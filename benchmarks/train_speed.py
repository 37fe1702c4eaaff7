"""CPU training speed: this machine's matmul peak, and the trainer's tokens/s and MFU on the default preset.

    python benchmarks/train_speed.py                 # every variant, ~3-6 min on 2 cores
    python benchmarks/train_speed.py --steps 20 --variants fp32,bf16

Each variant is a real ``regurg_bench.training.train`` run in its own process (clean peak RSS, no
shared compile caches) on the embedded en-es split. Throughput is measured between the first logged
step and the last (the first steps include warm-up). MFU = useful model FLOP/s over the measured
matmul peak of the precision the run computes in. Useful FLOPs: 6 x non-embedding params per input
token + 6 x vocab x hidden per target token (the head runs only there) + causal attention
6 x layers x hidden x sum(len^2) / len per token; padding counts as waste, not work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from regurg_bench.protocol.estimate import matmul_gflops

VARIANTS: dict[str, dict] = {
    # name: TrainConfig overrides, applied cumulatively in this order in the report's narrative.
    "fp32-naive": {"precision": "fp32", "length_bucketing": False, "pad_to_multiple_of": 1,
                   "attention": "sdpa"},  # transformers' default attention, no bucketing
    "fp32-sdpa": {"precision": "fp32", "attention": "sdpa"},  # + length bucketing, pad to a multiple of 8
    "fp32": {"precision": "fp32"},  # + eager attention (the CPU default)
    "bf16": {"precision": "bf16"},  # + bf16 autocast (the default on CPUs with native bf16)
    "bf16-batch64": {"precision": "bf16", "batch_size": 64},
    "bf16-compile": {"precision": "bf16", "compile": True},
}
DEFAULT_VARIANTS = "fp32-naive,fp32-sdpa,fp32,bf16,bf16-batch64"  # compile: opt in (minutes to compile)


def flops_per_pair(model_dir: Path, split: str, max_pairs: int) -> tuple[float, float]:
    """(mean useful training FLOPs per pair, mean input tokens per pair) over the split."""
    from transformers import AutoConfig, AutoTokenizer

    from regurg_bench.training.data import encode_all, load_split, n_loss_tokens_of

    config = AutoConfig.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    d, ff, layers, vocab = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    kv = d * config.num_key_value_heads // config.num_attention_heads
    non_embedding = layers * (2 * d * d + 2 * d * kv + 3 * d * ff)
    examples = encode_all(tokenizer, load_split(split, max_pairs=max_pairs).pairs, 256)
    total = 0.0
    for example in examples:
        n = len(example[0])
        total += 6 * non_embedding * n + 6 * vocab * d * n_loss_tokens_of(example) + 6 * layers * d * n * n
    return total / len(examples), sum(len(e[0]) for e in examples) / len(examples)


def run_variant(name: str, steps: int, split: str, max_pairs: int, preset: str) -> dict:
    from regurg_bench.training import TrainConfig, train
    from regurg_bench.training.card import read_card

    with tempfile.TemporaryDirectory() as tmp:
        config = TrainConfig(split=split, out=tmp, base_model=f"scratch:{preset}", max_pairs=max_pairs,
                             max_steps=steps, log_every=5, checkpoint_every=0, progress=False,
                             **VARIANTS[name])
        train(config)
        card = read_card(tmp)
        curve = card["loss_curve"]
        first, last = curve[0], curve[-1]
        tokens_per_s = (last["tokens"] - first["tokens"]) / (last["elapsed_s"] - first["elapsed_s"])
        per_pair, tokens_per_pair = flops_per_pair(Path(tmp), split, max_pairs)
        # the model folder is the output folder itself (scratch training writes it there)
    return {"variant": name, "tokens_per_s": tokens_per_s, "useful_gflops": tokens_per_s / tokens_per_pair
            * per_pair / 1e9, "precision": card["precision"], "final_loss": card["final_loss"],
            "parameters": card["parameters"], "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            / 1024, "batch_size": card["config"]["batch_size"], "wall_s": card["wall_time_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--split", default="bible:en-es:train")
    parser.add_argument("--max-pairs", type=int, default=3000)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    args = parser.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if args.one:
        print("RESULT " + json.dumps(run_variant(args.one, args.steps, args.split, args.max_pairs, args.preset)))
        return

    import torch

    peak = {"float32": matmul_gflops("float32", n=2048, reps=10),
            "bfloat16": matmul_gflops("bfloat16", n=2048, reps=10)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} (other jobs on the CPU make every number noisy)")
    print(f"matmul peak (2048^2, best of 10): fp32 {peak['float32']:.1f} GFLOP/s, "
          f"bf16 {peak['bfloat16']:.1f} GFLOP/s")
    print(f"{'variant':<14} {'tokens/s':>9} {'GFLOP/s':>8} {'MFU':>6} {'RSS MB':>7} {'loss':>6}")
    results = []
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--one", name, "--steps", str(args.steps), "--preset", args.preset,
               "--split", args.split, "--max-pairs", str(args.max_pairs)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            print(f"{name:<14} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(line[len("RESULT "):])
        r["mfu"] = r["useful_gflops"] / peak["bfloat16" if r["precision"] == "bf16-autocast" else "float32"]
        results.append(r)
        print(f"{name:<14} {r['tokens_per_s']:>9,.0f} {r['useful_gflops']:>8.1f} {r['mfu']:>6.1%} "
              f"{r['peak_rss_mb']:>7.0f} {r['final_loss']:>6.3f}")
    print(json.dumps({"peak_gflops": peak, "results": results}, indent=1))


if __name__ == "__main__":
    main()
