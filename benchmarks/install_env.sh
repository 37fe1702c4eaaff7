#!/usr/bin/env bash
# Time a fresh environment set up exactly as the README says, and report its size.
#   bash benchmarks/install_env.sh [DIR]   (default: a new temp dir; removed afterwards)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-$(mktemp -d)}"
export VENV="$dir/venv"
start=$(python3 -c "import time; print(time.time())")
bash "$root/scripts/setup.sh"
end=$(python3 -c "import time; print(time.time())")
printf 'fresh environment: %.1f s to install, %s on disk (%s)\n' "$(python3 -c "print($end - $start)")" \
  "$(du -sh "$VENV" | cut -f1)" "$VENV"
"$VENV/bin/python" -m pip list --disable-pip-version-check 2>/dev/null | wc -l | xargs printf '%s packages\n'
[ -n "${1:-}" ] || rm -rf "$dir"
