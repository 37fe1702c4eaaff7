"""Reading text and JSON-lines files line by line, with errors that name the file and the line.

Every JSONL reader in the package (corpus files, split condition files, training splits, the regression
gate, the protocol's own intermediate files) goes through :func:`iter_json_objects`, so a bad byte, a
broken line or a non-object row is reported the same way everywhere. What a *row* must contain differs
by reader (an empty target is fine for a diagnostic, not for training) and stays with each reader.

Files are read as bytes and each line is decoded on its own (UTF-8, strict), because a text-mode
``open`` reports a bad byte as an offset into a read buffer, not as a line a person can go and fix.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import CorpusError

_BOM = "\ufeff"


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is (None for a regular file)."""
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return what
    return None if stat.S_ISREG(mode) else "not a file"


def check_file(path: Path) -> None:
    """Fail early, with the path, when a file is missing or is not a regular file (rather than on first
    iteration; opening a FIFO would block until something writes to it)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CorpusError("file does not exist", path=path) from None
    except OSError as exc:
        raise CorpusError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    what = _not_regular(mode)
    if what:
        raise CorpusError(f"is not a regular file (it is {what})", path=path)


def read_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line (1-based), without its line ending.

    Decoding happens per line so a :class:`UnicodeDecodeError` can be reported with its line number.
    A UTF-8 byte-order mark at the start of the file is dropped (spreadsheet exports add one).
    """
    path = Path(path)
    check_file(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise CorpusError(f"cannot open file: {exc.strerror or exc}", path=path) from exc
    with handle:
        for lineno, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = raw[exc.start:exc.end].hex(" ")
                raise CorpusError(f"not valid UTF-8: byte(s) {bad} at byte {exc.start + 1} of the line "
                                  f"({exc.reason}); re-encode the file as UTF-8", path=path,
                                  line=lineno) from None
            if lineno == 1 and text.startswith(_BOM):
                text = text[1:]
            yield lineno, text.rstrip("\r\n")


def iter_json_objects(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Raises :class:`CorpusError` naming the file and line for invalid JSON or a line that is not an object.
    """
    path = Path(path)
    for lineno, text in read_lines(path):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=path, line=lineno) from None
        if not isinstance(row, dict):
            raise CorpusError(f"expected a JSON object, found {type(row).__name__}", path=path, line=lineno)
        yield lineno, row


def read_json_objects(path: str | Path) -> list[dict[str, Any]]:
    """All objects of a JSON-lines file, in order (see :func:`iter_json_objects`)."""
    return [row for _, row in iter_json_objects(path)]
