"""Reading untrusted submission files: bounded sizes, strict JSON, paths that stay inside a folder.

A submission is data only. JSON is parsed with the standard library (no pickle, no YAML, nothing
imported or executed by name); ``NaN``/``Infinity``, numbers that overflow to infinity and duplicate
keys are errors that name the field.
"""

from __future__ import annotations

import json
import math
from pathlib import Path, PurePosixPath
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.leaderboard.schema import SubmissionError


class _NonFinite:
    """Stands in for a NaN/Infinity token while parsing, so the error can name its field."""

    def __init__(self, token: str, problem: str = "non-finite numbers (NaN, Infinity) are not allowed") -> None:
        self.token, self.problem = token, problem


#: Integers longer than this are no count, seed or score any run writes (Python refuses > 4,300 digits
#: with a bare ValueError; a 100-digit resample count would try to allocate the universe).
MAX_INT_DIGITS = 20


def _parse_float(text: str) -> float | _NonFinite:
    value = float(text)
    return value if math.isfinite(value) else _NonFinite(text)


def _parse_int(text: str) -> int | _NonFinite:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        return _NonFinite(f"an integer of {digits:,} digits", problem="too large (at most "
                          f"{MAX_INT_DIGITS} digits)")
    return int(text)


def _no_duplicate_keys(label: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise SubmissionError(f"{label}: duplicate key {key!r} in one JSON object")
            out[key] = value
        return out
    return hook


def _find_non_finite(obj: Any, path: str = "") -> tuple[str, _NonFinite] | None:
    if isinstance(obj, _NonFinite):
        return path or "(top level)", obj
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, list):
        items = ((f"[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for key, value in items:
        sub = f"{path}{key}" if str(key).startswith("[") else (f"{path}.{key}" if path else str(key))
        found = _find_non_finite(value, sub)
        if found:
            return found
    return None


def loads_strict(text: str, label: str, allow_non_finite: bool = False) -> Any:
    """Parse JSON text; reject NaN/Infinity (naming the field), overflowing numbers and duplicate keys.

    ``allow_non_finite`` is for files lm-eval wrote (it may log a NaN standard error); the numbers read
    from them are checked where they are used.
    """
    try:
        if allow_non_finite:
            data = json.loads(text, parse_int=_parse_int)
        else:
            data = json.loads(text, parse_constant=_NonFinite, parse_float=_parse_float, parse_int=_parse_int,
                              object_pairs_hook=_no_duplicate_keys(label))
    except SubmissionError:
        raise
    except ValueError as err:  # JSONDecodeError, or a number Python cannot convert
        raise SubmissionError(f"{label}: not valid JSON ({err})") from None
    except RecursionError:
        raise SubmissionError(f"{label}: JSON nested too deeply") from None
    found = _find_non_finite(data)
    if found:
        field, bad = found
        raise SubmissionError(f"{label}: field '{field}' is {bad.token}: {bad.problem}")
    return data


def read_bounded(path: Path, limit: int, label: str) -> str:
    """The UTF-8 text of ``path``, refusing files larger than ``limit`` bytes (checked while reading)."""
    if not path.is_file():
        raise SubmissionError(f"{label}: no such file ({path})")
    size = path.stat().st_size
    if size > limit:
        raise SubmissionError(f"{label}: file too large ({size:,} bytes; the limit is {limit:,} bytes)")
    with open(path, "rb") as handle:
        raw = handle.read(limit + 1)  # the file may have grown since stat()
    if len(raw) > limit:
        raise SubmissionError(f"{label}: file too large (more than {limit:,} bytes)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{label}: not UTF-8 text ({err})") from None


def read_json(path: Path, limit: int, label: str, allow_non_finite: bool = False) -> Any:
    """:func:`read_bounded` then :func:`loads_strict`."""
    return loads_strict(read_bounded(path, limit, label), label, allow_non_finite)


def inside(root: Path, relative: str, label: str) -> Path:
    """``root / relative``, resolved, refusing absolute paths, ``..``, and symlinks that lead outside ``root``."""
    if not isinstance(relative, str) or not relative or "\x00" in relative or "\\" in relative:
        raise SubmissionError(f"{label}: {relative!r} is not a relative POSIX path")
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts:
        raise SubmissionError(f"{label}: {relative!r} must be a path relative to the run folder, without '..'")
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base):
        raise SubmissionError(f"{label}: {relative!r} resolves to {target}, outside the run folder {base} "
                              "(a symlink that escapes it?)")
    return target


def write_file(path: Path, data: str | bytes) -> None:
    """Write atomically, world-readable (leaderboard files are published; mkstemp would leave them 0600)."""
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)
    path.chmod(0o644)
