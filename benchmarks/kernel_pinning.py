"""Does pinning the CPU kernels make training bit-identical, and what does it cost? One machine's answer.

    python benchmarks/kernel_pinning.py [--steps 80]

Trains the same from-scratch student (the base model's architecture, ``scratch:tiny``, fp32, 2 threads) in a
fresh process under each kernel setting and prints the sha256 of its weights and the training time:

- default: whatever MKL, oneDNN and ATen pick for this CPU;
- MKL_CBWR=COMPATIBLE: MKL's most portable branch (imitates an older machine);
- pinned: MKL_CBWR=AVX2, ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2 (the AVX2 code paths every
  x86 machine of this project's kinds has).

Equal hashes mean the setting does not change the bits *on this machine*; whether pinned runs match across
machine kinds (Intel AMX vs AMD Zen 4 vs Zen 3) can only be measured on each of them: run this there and
compare the "pinned" hashes. The machine line (CPU, matmul rate) comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

SETTINGS = {
    "default": {},
    "MKL_CBWR=COMPATIBLE": {"MKL_CBWR": "COMPATIBLE"},
    "pinned AVX2": {"MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}

CHILD = r"""
import hashlib, json, sys, time
from pathlib import Path
from regurg_bench.training import TrainConfig, train
out = Path(sys.argv[1])
started = time.perf_counter()
train(TrainConfig(split="bible:en-es:train", out=str(out), base_model="scratch:tiny", max_steps=int(sys.argv[2]),
                  batch_size=32, precision="fp32", num_threads=2, checkpoint_every=0, progress=False, seed=0))
print(json.dumps({"seconds": time.perf_counter() - started,
                  "sha256": hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()}))
"""


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=80)
    args = ap.parse_args()
    from regurg_bench.protocol.estimate import matmul_gflops

    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s (torch)")
    rows = {}
    for name, env in SETTINGS.items():
        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            res = subprocess.run([sys.executable, "-c", CHILD, f"{tmp}/out", str(args.steps)], env=os.environ | env,
                                 capture_output=True, text=True, check=True)
            rows[name] = json.loads(res.stdout.strip().splitlines()[-1]) | {"wall": time.perf_counter() - started}
    ref = rows["default"]["sha256"]
    for name, r in rows.items():
        print(f"{name:>20}: train {r['seconds']:6.1f} s ({r['seconds'] / rows['default']['seconds']:.2f}x default), "
              f"weights {r['sha256'][:16]} {'= default' if r['sha256'] == ref else '!= default'}")


if __name__ == "__main__":
    main()
