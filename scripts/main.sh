#!/usr/bin/env bash
# The main job: the whole regurg-bench protocol on the embedded default, offline on CPU.
# Builds matched real vs Apertium-regurgitated en->es training splits from the embedded Bible corpus,
# trains the student matrix (REAL, REGURG, a fraction of real, mitigations M1-M4), evaluates every
# student with the regurg_mt lm-eval task, and writes report.md/.html, results.json and plots.
#   OUT=dir   the run folder (default runs/protocol/default); extra arguments go to `regurg-bench run`.
# Re-running a finished run does nothing; an interrupted one resumes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${VENV:-$root/.venv}"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$venv/bin/regurg-bench" run --out "${OUT:-$root/runs/protocol/default}" "$@"
