#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment: CPU torch FIRST, then the project.
#   VENV=path   where to put it (default: .venv in the repository)
# Idempotent: it reinstalls only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VENV:-$root/.venv}"
python="${PYTHON:-python3}"
stamp="$venv/.regurg-bench-installed"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $venv" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# The CPU build of torch must come first: any later requirement on torch is then already
# satisfied, so pip never resolves a multi-GB CUDA build.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[hf,dev]"
echo "$want" > "$stamp"
echo "[setup] done: $("$venv/bin/python" -c 'import torch, lm_eval, regurg_bench; print("torch", torch.__version__, "| regurg-bench", regurg_bench.__version__)')" >&2
