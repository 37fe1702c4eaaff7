#!/usr/bin/env bash
# The main job: the whole regurg-bench protocol on the embedded default, offline on CPU.
# Fine-tunes the embedded pretrained base (bible-base-en-es, built once at first use) on 1,000 New
# Testament en->es pairs with human vs Apertium vs self-generated targets, plus mitigations M1-M4,
# 3 seeds; evaluates every student with the regurg_mt lm-eval task, then scores and reports
# (report.md/.html, results.json, plots).
#   OUT=dir   the run folder (default runs/protocol/default); extra arguments go to `regurg-bench run`.
# Re-running a finished run does nothing; an interrupted one resumes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${VENV:-$root/.venv}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$venv/bin/regurg-bench" run --out "${OUT:-$root/runs/protocol/default}" "$@"
