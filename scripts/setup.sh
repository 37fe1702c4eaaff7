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

# System package: Apertium, the offline rule-based MT system used as a non-LLM generator. Installed
# when we can (root with apt-get); otherwise its tests skip and the README says how to install it.
if ! command -v apertium >/dev/null 2>&1 || [ ! -d /usr/share/apertium/apertium-eng-spa ] \
   || ! command -v cg-proc >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing apertium with its eng-spa, fr-es, spa-ita pairs (Debian packages)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apertium apertium-eng-spa apertium-fr-es apertium-spa-ita cg3) >/dev/null \
      || echo "[setup] warning: could not install apertium; its generator will be unavailable" >&2
  else
    echo "[setup] note: apertium not found; install it with: sudo apt-get install apertium apertium-eng-spa apertium-fr-es apertium-spa-ita cg3" >&2
  fi
fi

# System packages: Debian's chromium and its chromedriver, for the leaderboard page's browser test
# (tests/test_leaderboard_browser.py drives the real browser with Selenium; nothing is downloaded by
# pip or selenium-manager). Installed when we can (root with apt-get); otherwise that test skips.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing chromium and chromium-driver (Debian packages) for the leaderboard browser test" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null \
      || echo "[setup] warning: could not install chromium; the leaderboard browser test will skip" >&2
  else
    echo "[setup] note: chromium not found; install it with: sudo apt-get install chromium chromium-driver" >&2
  fi
fi

# Opt-in: vLLM's CPU build in its own environment (.venv-vllm; see scripts/setup_vllm.sh for why).
if [ "${REGURG_BENCH_WITH_VLLM:-0}" = 1 ]; then
  bash "$root/scripts/setup_vllm.sh"
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "[setup] creating $venv" >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
# The CPU build of torch must come first: any later requirement on torch is then already
# satisfied, so pip never resolves a multi-GB CUDA build.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[hf,ray,dev]"
echo "$want" > "$stamp"
echo "[setup] done: $("$venv/bin/python" -c 'import torch, lm_eval, regurg_bench; print("torch", torch.__version__, "| regurg-bench", regurg_bench.__version__)')" >&2
