"""The re-runs of an entry: who re-trained and re-evaluated which of its students, where, when, and with what
outcome (``regurg-bench verify --entry``, :mod:`.rerun`).

They live beside the entry, never in it: ``<board>/verifications/<entry-id>.json`` (an entry's bytes and its
content-derived id stay what its evidence gives). One file per entry, a list of records, appended to
atomically. ``leaderboard validate`` checks each file (schema, an entry it belongs to); the page shows an
entry as *verified* once a record says every re-run student reproduced (exactly or within noise), as
*failed re-run* when the latest record failed (ranked with the flagged entries), else *unverified*.

A record names who ran it (``by``): ``board-ci`` for the board's own CI (leaderboards/ci/), anything else for a
user. The board's CI trusts only its own records, and re-runs any entry whose records changed in the pull
request it checks (``leaderboard ci --changed-since``), so a hand-written "board-ci" record buys nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from regurg_bench.leaderboard.safe_io import read_json, write_file
from regurg_bench.leaderboard.schema import Name, SubmissionError, check_name
from regurg_bench.results import validated

VERIFICATIONS_SCHEMA = "regurg-bench/leaderboard-verifications/v1"
VERIFICATIONS_DIR = "verifications"
BOARD_CI = "board-ci"
MAX_VERIFICATIONS_BYTES = 4 * 1024 * 1024
Outcome = Literal["reproduced exactly", "reproduced within noise", "failed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Verification(_Strict):
    """One re-run of K students of an entry."""

    by: str = Field(min_length=1, max_length=100)
    date: str = Field(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    machine: str = Field(max_length=500)
    #: CPU kernel settings that were set (MKL_CBWR, ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY)
    kernels: dict[str, str] = {}
    regurg_bench_version: str
    rerun: int = Field(ge=1)
    #: the students re-run (drawn with the entry id as the seed) and each one's outcome
    students: dict[Name, Outcome]
    outcome: Outcome
    #: every score outside its tolerance (student, task, metric, recorded, reproduced, difference, tolerance)
    failures: list[dict] = []
    #: the re-built data gave other student keys than the recorded ones (another machine's generator outputs)
    data_rebuilt_differently: list[Name] = []
    seconds: float = Field(ge=0.0)


class Verifications(_Strict):
    schema_id: Literal["regurg-bench/leaderboard-verifications/v1"] = Field(alias="schema")
    entry_id: Name
    records: list[Verification] = Field(min_length=1)

    def to_json(self) -> str:
        import json

        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True,
                          ensure_ascii=False, allow_nan=False) + "\n"


def path_for(board_dir: Path, entry_id: str) -> Path:
    return Path(board_dir) / VERIFICATIONS_DIR / f"{check_name('entry id', entry_id)}.json"


def read(board_dir: Path, entry_id: str) -> Verifications | None:
    """The verification file of ``entry_id`` (None when it has none); a clear error naming the file if broken."""
    path = path_for(board_dir, entry_id)
    if not path.exists():
        return None
    label = f"{Path(board_dir).name}/{VERIFICATIONS_DIR}/{path.name}"
    if path.is_symlink():
        raise SubmissionError(f"{label}: verification files must be plain files, not symlinks")
    found = validated(Verifications, read_json(path, MAX_VERIFICATIONS_BYTES, label), label)
    if found.entry_id != entry_id:
        raise SubmissionError(f"{label}: field 'entry_id' is {found.entry_id!r}, but the file is {path.name}")
    return found


def append(board_dir: Path, entry_id: str, record: Verification) -> Path:
    """Add ``record`` to the entry's verification file (created if needed), atomically."""
    old = read(board_dir, entry_id)
    records = (old.records if old else []) + [record]
    path = path_for(board_dir, entry_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, Verifications.model_validate({"schema": VERIFICATIONS_SCHEMA, "entry_id": entry_id,
                                                   "records": records}).to_json())
    return path


def status(found: Verifications | None, trusted: str | None = None) -> tuple[str, Verification | None]:
    """("verified" | "failed" | "unverified", the record that decides it): the latest record (of ``trusted`` only,
    when given) decides."""
    records = [r for r in (found.records if found else []) if trusted is None or r.by == trusted]
    if not records:
        return "unverified", None
    last = records[-1]
    return ("failed" if last.outcome == "failed" else "verified"), last


def check_board(board_dir: Path, entry_ids: set[str]) -> None:
    """Every verification file of a board is valid and belongs to one of its entries."""
    folder = Path(board_dir) / VERIFICATIONS_DIR
    if not folder.is_dir():
        return
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        entry_id = path.name.removesuffix(".json")
        if path.suffix != ".json" or entry_id not in entry_ids:
            raise SubmissionError(f"{Path(board_dir).name}/{VERIFICATIONS_DIR}/{path.name}: no entry "
                                  f"{entry_id!r} on this board (verification files are <entry-id>.json)")
        read(board_dir, entry_id)
