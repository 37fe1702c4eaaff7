#!/usr/bin/env bash
# The GPU check: on a machine with an NVIDIA GPU, install what is needed, then measure
#   1. generation throughput, vLLM vs transformers, on the same model (pairs/s, tokens/s) and parity;
#   2. regurg_mt evaluation throughput under lm-eval's vllm backend vs raw vLLM (and the hf backend);
#   3. --preset paper-smoke with GPU settings (bf16, no enforce_eager), stage times: its 15 LoRA students are
#      evaluated as adapters on one vLLM engine per base model (eval.lora: adapter; 2 engine starts);
#   4. the same students again with --eval-lora merged (one engine per merged checkpoint: 15 starts; the
#      students are cached), then benchmarks/lora_engine.py: outputs that differ between the two paths;
# and print one table. Budget: <= 10 minutes on an H200-class machine. Never part of CI.
#   bash benchmarks/gpu_check.sh [OUT_DIR]     (default: runs/gpu-check)
#   GPU_CHECK_VENV=path   the environment (default .venv-gpu; reused when it already imports vllm)
#   GPU_CHECK_N=400       sentences for stages 1-2
#   GPU_CHECK_DRY=1       check the script's own logic on a CPU: stages 1-2 on 4 sentences, fp32, no
#                         paper-smoke, in the CPU vLLM environment (.venv-vllm) unless GPU_CHECK_VENV is set
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-runs/gpu-check}"
mkdir -p "$out"
start=$SECONDS
dry="${GPU_CHECK_DRY:-0}"
stamp() { echo "[gpu-check $((SECONDS - start)) s] $*" >&2; }

if [ "$dry" = 1 ]; then
  venv="${GPU_CHECK_VENV:-$root/.venv-vllm}"
  n=4; dtype=float32
else
  command -v nvidia-smi >/dev/null 2>&1 || { echo "gpu_check: no nvidia-smi; this script is for GPU machines (GPU_CHECK_DRY=1 to dry-run on CPU)" >&2; exit 2; }
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
  venv="${GPU_CHECK_VENV:-$root/.venv-gpu}"
  n="${GPU_CHECK_N:-400}"; dtype=bfloat16
  if ! "$venv/bin/python" -c "import vllm, regurg_bench" >/dev/null 2>&1; then
    stamp "installing vLLM (CUDA build) and regurg-bench[hf,vllm] into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    # vLLM pins its own CUDA torch: install it first, then the project into the same resolution.
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "vllm==0.32.0"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[hf,vllm,dev]"
  fi
fi
py="$venv/bin/python"
stamp "environment: $("$py" -c 'import importlib.metadata as m; print("vllm", m.version("vllm"), "| torch", m.version("torch"), "| transformers", m.version("transformers"))')"

# Stages 1-2: generation and evaluation throughput, parity.
stamp "generation + evaluation throughput on $n sentences ($dtype)"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$py" benchmarks/vllm_parity.py --n "$n" --dtype "$dtype" --batch-size 64 \
  --json "$out/parity.json" | tee "$out/parity.txt"

# Stage 3: paper-smoke with GPU settings (a copy of the preset with bf16 and CUDA graphs).
if [ "$dry" != 1 ]; then
  stamp "paper-smoke with GPU settings"
  "$py" - "$out/paper-smoke-gpu.yaml" <<'PY'
import sys, yaml
from regurg_bench.protocol.config import preset_path
cfg = yaml.safe_load(preset_path("paper-smoke").read_text())
cfg["name"] = "paper-smoke-gpu"
cfg["train"]["precision"] = "bf16"
cfg["eval"]["dtype"] = "bfloat16"
for gen in cfg["build"]["generators"].values():
    opts = gen["options"]
    opts.pop("engine_kwargs", None)
    opts.get("launch_vllm", {}).pop("enforce_eager", None)
    if "dtype" in opts:
        opts["dtype"] = "bfloat16"
    if "launch_vllm" in opts:
        opts["launch_vllm"]["dtype"] = "bfloat16"
        opts["launch_vllm"]["gpu_memory_utilization"] = 0.3   # the offline engine of `llama` shares the GPU
    else:
        opts.setdefault("engine_kwargs", {})["gpu_memory_utilization"] = 0.3
open(sys.argv[1], "w").write(yaml.safe_dump(cfg, sort_keys=False))
PY
  rm -rf "$out/paper-smoke"
  t=$SECONDS
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$venv/bin/regurg-bench" run "$out/paper-smoke-gpu.yaml" --out "$out/paper-smoke" \
    --no-progress > "$out/paper-smoke.log" 2>&1 || { tail -20 "$out/paper-smoke.log"; exit 1; }
  smoke_s=$((SECONDS - t))
  cp "$out/paper-smoke/results.json" "$out/results-adapter.json"
  # Stage 4: the merged checkpoints, one engine each (same run folder: students cached, evaluations keyed apart).
  stamp "paper-smoke evaluation again on merged checkpoints (--eval-lora merged)"
  HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 "$venv/bin/regurg-bench" run "$out/paper-smoke-gpu.yaml" --out "$out/paper-smoke" \
    --eval-lora merged --no-progress > "$out/paper-smoke-merged.log" 2>&1 || { tail -20 "$out/paper-smoke-merged.log"; exit 1; }
  cp "$out/paper-smoke/results.json" "$out/results-merged.json"
  "$py" benchmarks/lora_engine.py "$out/paper-smoke" --json "$out/lora-engine.json" | tee "$out/lora-engine.txt"
else
  smoke_s="(skipped: dry run)"
fi

# One table.
"$py" - "$out" "$smoke_s" "$((SECONDS - start))" <<'PY'
import json, sys
from pathlib import Path
out, smoke_s, total = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
p = json.loads((out / "parity.json").read_text())
g, e = p.get("generate", {}), p.get("eval", {})
rows = [("machine", p["machine"], ""), ("matmul fp32 GFLOP/s", p["fp32_gflops"], "")]
if g:
    rows += [("generation pairs/s (transformers | vLLM)", g["transformers"]["pairs_per_s"], g["vllm"]["pairs_per_s"]),
             ("generation tokens/s (transformers | vLLM)", g["transformers"]["tokens_per_s"], g["vllm"]["tokens_per_s"]),
             ("identical greedy outputs", f"{g['parity']['identical']}/{g['parity']['n']}", ""),
             ("BLEU / chrF delta (generators)", round(g["parity"]["bleu_delta"], 2), round(g["parity"]["chrf_delta"], 2))]
if e:
    rows += [("regurg_mt eval wall s (hf | vllm backend)", e["hf"]["seconds_with_startup"], e["vllm"]["seconds_with_startup"])]
    if g:
        rows += [("vllm backend vs raw vLLM, s incl. start-up", e["vllm"]["seconds_with_startup"],
                  round(g["vllm"]["startup_s"] + g["vllm"]["seconds"], 1))]
timings = out / "results-adapter.json"
if timings.is_file():
    rows += [("paper-smoke stage s", json.dumps(json.loads(timings.read_text())["timings_s"]), "")]
    merged = json.loads((out / "results-merged.json").read_text())["timings_s"]
    rows += [("paper-smoke eval s (adapters, one engine per base; vs merged, one engine each)",
              json.loads(timings.read_text())["timings_s"].get("eval"), merged.get("eval"))]
    starts = [next((l for l in (out / f).read_text().splitlines() if "vLLM engine start(s)" in l), "-")
              for f in ("paper-smoke.log", "paper-smoke-merged.log")]
    rows += [("eval engine starts (adapter; vs merged: 1 per student)", starts[0], starts[1])]
    t = json.loads((out / "lora-engine.json").read_text())["total"]
    rows += [("outputs differing, adapter vs merged", f"{t['differ']}/{t['outputs']}",
              f"in {t['students_with_a_difference']}/{t['students']} students")]
rows += [("paper-smoke wall s", smoke_s, ""), ("gpu_check total s", total, "")]
print("\n| measure | value | vs |\n|---|---|---|")
for name, a, b in rows:
    print(f"| {name} | {a} | {b} |")
PY
