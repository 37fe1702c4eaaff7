"""``regurg-bench leaderboard ci BOARD``: what a board's CI runs on every pull request (leaderboards/ci/).

1. ``leaderboard validate``: every entry rebuilt from its evidence under every rule, every verification file
   checked (a bad one fails the job);
2. every entry the board's CI has not re-run yet (no ``board-ci`` record), and every entry whose entry or
   verification file changed since ``--changed-since REF`` (the pull request's base), is re-run:
   ``verify --entry --rerun K --by board-ci`` (:mod:`.rerun`), within a time budget. Whether an entry fits is
   decided *before* it runs, from the protocol's own work estimate on this machine's calibration
   (:mod:`regurg_bench.protocol.estimate`): rebuilding the base model and data, then K students. An entry
   whose base is not a CPU-sized preset (a pretrained hub model) has no estimate: it stays *unverified* and
   the job says which runner it needs (a GPU runner running the same command). So does one that does not fit
   the budget that is left.

Exit status: 0 when every entry is valid and no re-run failed, 1 otherwise (the failed entries are named).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench.leaderboard import verifications
from regurg_bench.leaderboard.schema import SubmissionError

DEFAULT_RERUN = 2
DEFAULT_BUDGET_S = 40 * 60


@dataclass
class CiOutcome:
    valid: int = 0
    verified: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # entry id -> why it stays unverified

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def changed_entries(board_dir: Path, ref: str) -> set[str]:
    """Entry ids whose entry or verification file differs from git revision ``ref`` (a pull request's base)."""
    try:
        out = subprocess.run(["git", "diff", "--name-only", ref, "--", "."], cwd=board_dir, check=True,
                             capture_output=True, text=True).stdout
        untracked = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--", "."], cwd=board_dir,
                                   check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as err:
        raise SubmissionError(f"--changed-since {ref}: git cannot diff {board_dir} against it ({err})") from None
    ids = set()
    for line in (out + untracked).splitlines():
        parts = Path(line).parts
        if len(parts) >= 2 and parts[-2] in ("entries", verifications.VERIFICATIONS_DIR) and line.endswith(".json"):
            ids.add(Path(line).stem)
    return ids


def rerun_estimate(entry_path: Path, rerun: int) -> float | None:
    """Seconds a ``verify --entry --rerun K`` of this entry should take here (None: not a CPU-sized base)."""
    from regurg_bench.leaderboard.rerun import draw_students, load_entry, suspect_student
    from regurg_bench.protocol.config import _validate
    from regurg_bench.protocol.estimate import plan_work
    from regurg_bench.protocol.plan import planned_conditions
    from regurg_bench.protocol.reproduce import read_results
    from regurg_bench.protocol.run import _calibration

    entry, _board, files = load_entry(entry_path)
    results = read_results(files["results.json"], f"{entry.entry_id}: evidence results.json")
    cfg = _validate(results.config, f"{entry.entry_id}: recorded config")
    cal = _calibration(cfg)
    items = plan_work(cfg, planned_conditions(cfg))
    if cal is None or not any(it.parameters for it in items):
        return None
    chosen = set(draw_students(entry.entry_id, sorted(results.students), rerun, suspect_student(entry)))
    return sum(it.seconds(cal) for it in items
               if it.stage in ("base model", "build", "data") or (it.stage in ("train", "eval") and it.name in chosen))


def board_ci(root: Path, board: str, *, rerun: int = DEFAULT_RERUN, budget_s: float = DEFAULT_BUDGET_S,
             changed_since: str | None = None, say: Callable[[str], None] = print, **verify_kwargs: Any) -> CiOutcome:
    """Validate ``board`` and re-run what needs it (see the module docstring)."""
    import time

    from regurg_bench.leaderboard.rerun import verify_entry
    from regurg_bench.leaderboard.submit import entries_dir, validate_leaderboard

    entries = validate_leaderboard(root, board)
    folder = entries_dir(root, board)
    outcome = CiOutcome(valid=len(entries))
    say(f"{board}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, all valid")
    changed = changed_entries(folder.parent, changed_since) if changed_since else set()
    started = time.monotonic()
    for entry in entries:
        state, last = verifications.status(verifications.read(folder.parent, entry.entry_id), verifications.BOARD_CI)
        if state != "unverified" and entry.entry_id not in changed:
            say(f"{entry.entry_id}: {state} by {verifications.BOARD_CI} on {last.date} ({last.outcome})")
            (outcome.failed if state == "failed" else outcome.verified).append(entry.entry_id)
            continue
        path = folder / f"{entry.entry_id}.json"
        estimate = rerun_estimate(path, rerun)
        left = budget_s - (time.monotonic() - started)
        if estimate is None:
            outcome.skipped[entry.entry_id] = (f"base {entry.base_model!r} is not a CPU-sized preset: run `regurg-bench "
                                               f"verify --entry {path} --rerun {rerun} --by board-ci` on a GPU runner")
        elif estimate > left:
            outcome.skipped[entry.entry_id] = (f"estimated {estimate / 60:.1f} min here, {left / 60:.1f} min of the "
                                               "budget left: run it on a larger runner or raise --budget-min")
        if entry.entry_id in outcome.skipped:
            say(f"{entry.entry_id}: unverified ({outcome.skipped[entry.entry_id]})")
            continue
        say(f"{entry.entry_id}: re-running {rerun} students (estimated {estimate / 60:.1f} min)")
        done = verify_entry(path, rerun, by=verifications.BOARD_CI, say=say, **verify_kwargs)
        say(f"{entry.entry_id}: {done.record.outcome} ({', '.join(f'{k}: {v}' for k, v in done.record.students.items())})")
        (outcome.failed if done.record.outcome == "failed" else outcome.verified).append(entry.entry_id)
    return outcome
