#!/usr/bin/env bash
# The test command: set up the environment if needed, then run the whole suite offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${VENV:-$root/.venv}"
cd "$root"
HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 exec "$venv/bin/python" -m pytest "$@"
