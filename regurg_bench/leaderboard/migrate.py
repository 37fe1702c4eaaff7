"""``regurg-bench leaderboard migrate NAME``: bring a board's entries to the newest entry schema where that
changes anything.

An entry is rebuilt from its own evidence with the current code, under the newest schema for its content
(:func:`regurg_bench.leaderboard.submit.entry_from_evidence` without a version). Only an entry whose
rebuilt form differs is rewritten; today that is a v2 entry whose evidence holds a ``collapse`` section (a
collapse run submitted before v3 existed), which becomes a v3 entry carrying the curve. Every other entry —
any v2 entry of a run without the section, any v3 entry — rebuilds to its own bytes and is left alone, so
migrating twice changes nothing the second time.

A migrated entry gets a new content-derived id: the new file is written, its verification records (if any)
move with it (they re-ran the same students of the same evidence; the board's CI re-runs it anyway, as its
files changed), and the old file is removed. Nothing is lost: the old bytes stay in the board's history and
stay valid under v2 (``leaderboard validate`` re-checks each entry under its own version). v1 entries (no
evidence) cannot be rebuilt: a board holding one is refused, as by ``validate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from regurg_bench.leaderboard import evidence, verifications
from regurg_bench.leaderboard.safe_io import write_file
from regurg_bench.leaderboard.schema import SubmissionError
from regurg_bench.leaderboard.submit import entries_dir, entry_from_evidence, validate_leaderboard


@dataclass(frozen=True)
class Migration:
    """One entry rewritten: its old and new id and schema."""

    old_id: str
    new_id: str
    old_schema: str
    new_schema: str


def _move_verifications(board: Path, old_id: str, new_id: str) -> None:
    found = verifications.read(board, old_id)
    if found is None:
        return
    moved = found.model_copy(update={"entry_id": new_id})
    write_file(verifications.path_for(board, new_id), moved.to_json())
    verifications.path_for(board, old_id).unlink()


def migrate_leaderboard(root: str | Path, leaderboard: str, dry_run: bool = False) -> list[Migration]:
    """Rewrite every entry of ``leaderboard`` whose newest form differs; return what was (or, with ``dry_run``,
    would be) rewritten. The board is validated first, each entry under its own version: a board that does
    not validate is not touched."""
    folder = entries_dir(root, leaderboard)
    board = folder.parent
    done: list[Migration] = []
    rewrites = []
    for entry in validate_leaderboard(root, leaderboard):  # every entry rebuilt before any file is written
        label = f"{leaderboard}/entries/{entry.entry_id}.json"
        files = evidence.load(board, entry.evidence.sha256, label)
        try:
            newest = entry_from_evidence(evidence.BundleFiles(files, entry.evidence.sha256), leaderboard,
                                         entry.model, entry.evidence.model_dump())
        except SubmissionError as err:  # e.g. a collapse run's bundle made before v3 holds no collapse samples
            raise SubmissionError(f"{label}: cannot be migrated, nothing was written ({err}); submit its run "
                                  "folder again to make the newest entry") from None
        if newest.to_json() != entry.to_json():
            rewrites.append((entry, newest))
    for entry, newest in rewrites:
        done.append(Migration(entry.entry_id, newest.entry_id, entry.schema_id, newest.schema_id))
        if dry_run:
            continue
        write_file(folder / f"{newest.entry_id}.json", newest.to_json())
        _move_verifications(board, entry.entry_id, newest.entry_id)
        (folder / f"{entry.entry_id}.json").unlink()
    if done and not dry_run:
        validate_leaderboard(root, leaderboard)  # the migrated board must validate as a whole
    return done
