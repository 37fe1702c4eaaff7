#!/usr/bin/env bash
# The test command: set up the environment if needed, then run the whole suite offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${VENV:-$root/.venv}"
cd "$root"
# In CI (CI=true on GitHub Actions and most runners) a missing mUSE encoder wheel fails its test instead
# of skipping it: it comes from PyPI, which CI always reaches. Export REGURG_BENCH_REQUIRE_APERTIUM=1 and
# REGURG_BENCH_REQUIRE_BROWSER=1 too where the runner installs Apertium and Chromium.
if [ -n "${CI:-}" ]; then
  export REGURG_BENCH_REQUIRE_ENCODER="${REGURG_BENCH_REQUIRE_ENCODER:-1}"
fi
# One pytest-xdist worker per core (REGURG_BENCH_TEST_WORKERS overrides; 0 runs in this process), a test
# file at a time per worker, so that a file's module fixtures (a protocol run, a trained student) are
# built once; tests/conftest.py shares the session fixtures between workers and splits the cores.
workers="${REGURG_BENCH_TEST_WORKERS:-$(nproc)}"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 exec "$venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
