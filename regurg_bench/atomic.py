"""Atomic writes: a reader (or a killed writer) never sees a half-written file or folder.

* :func:`atomic_write` — one file: write beside it, fsync, ``os.replace``;
* :func:`atomic_folder` — a folder: build it under a temporary name beside the target, then
  ``os.replace`` it into place (a killed build leaves a ``.<name>.*.part`` folder, never a half target).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Write to a temporary file beside ``path``, fsync, then ``os.replace`` it into place.

    On an exception the temporary file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise



@contextlib.contextmanager
def atomic_folder(target: str | Path, *, prefix: str | None = None, replace: bool = True,
                  fsync: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block ends normally, move it to
    ``target`` with ``os.replace``. On an exception the temporary folder is removed and ``target`` is
    left as it was.

    ``replace``: remove an existing ``target`` first (an old or broken copy); with False an existing
    target is a ``FileExistsError``. ``prefix``: the temporary name's start (default ``.<name>.``;
    the suffix is always ``.part``, so a caller can sweep leftovers of killed builds with a glob).
    ``fsync``: flush every file in the folder to disk before it becomes visible under its final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if not replace and target.exists():
        raise FileExistsError(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix or f".{target.name}.", suffix=".part"))
    try:
        yield tmp
        if fsync:
            for path in tmp.rglob("*"):
                if path.is_file():
                    with open(path, "rb") as handle:
                        os.fsync(handle.fileno())
        if target.exists():
            if not replace:
                raise FileExistsError(target)
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
