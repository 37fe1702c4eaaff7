#!/usr/bin/env bash
# The board's CI job: validate every entry of every board, then re-run K students of each entry the board's CI
# has not verified yet (regurg-bench leaderboard ci; leaderboards/README.md, "Re-runs"). One command, locally too:
#   bash leaderboards/ci/run.sh                 # every board under leaderboards/
#   BOARDS="bible-en-es" RERUN=2 BUDGET_MIN=40 BASE_REF=origin/main bash leaderboards/ci/run.sh
# ROOT: the leaderboards folder; BASE_REF: the pull request's base (entries changed since it are re-run even
# when a verification is recorded); VENV: the environment with regurg-bench (set up by scripts/setup.sh when
# missing). The recorded outcomes land in <board>/verifications/<entry-id>.json: commit them (board.yml does).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
root="${ROOT:-$repo/leaderboards}"
venv="${VENV:-$repo/.venv}"
[ -x "$venv/bin/regurg-bench" ] || VENV="$venv" bash "$repo/scripts/setup.sh"
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
boards="${BOARDS:-$(find "$root" -mindepth 2 -maxdepth 2 -type d -name entries -printf '%h\n' | xargs -rn1 basename | sort)}"
status=0
for board in $boards; do
  args=(leaderboard ci "$board" --root "$root" --rerun "${RERUN:-2}" --budget-min "${BUDGET_MIN:-40}")
  [ -n "${BASE_REF:-}" ] && args+=(--changed-since "$BASE_REF")
  "$venv/bin/regurg-bench" "${args[@]}" || status=1
done
exit "$status"
