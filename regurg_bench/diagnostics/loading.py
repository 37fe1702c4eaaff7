"""Reading a split's conditions: ``real.jsonl`` and ``regurg_<name>.jsonl`` files (or sub-folders).

Row contract (written by ``regurg-bench build``): one JSON object per line with ``id``, ``source``,
``target``, ``src_lang``, ``tgt_lang`` and ``condition`` (other keys are ignored). Ids must be unique
within a file; conditions are compared by id. Unlike the corpus readers, an *empty target* is accepted
here: an empty output is something a diagnostic should count, not a reason to refuse the file.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from pathlib import Path

from regurg_bench.corpora.base import CorpusError, Pair
from regurg_bench.corpora.lines import iter_json_objects

REAL = "real"
#: Condition files picked up from a split folder by default (besides ``real``).
DEFAULT_INCLUDE: tuple[str, ...] = ("regurg_*",)


def read_condition_file(path: str | Path, *, src_lang: str | None = None, tgt_lang: str | None = None) -> list[Pair]:
    """Pairs of one JSONL condition file; languages from each row, else from the arguments."""
    path = Path(path)
    pairs: list[Pair] = []
    seen: set[str] = set()
    for lineno, row in iter_json_objects(path):
        for key in ("id", "source", "target"):
            if key not in row:
                raise CorpusError(f"object has no {key!r} key", path=path, line=lineno, field=key)
            value = row[key]
            ok = isinstance(value, str) or (key == "id" and isinstance(value, int) and not isinstance(value, bool))
            if not ok:
                raise CorpusError(f"{key} must be a string, found {type(value).__name__}",
                                  path=path, line=lineno, field=key)
        ident = str(row["id"]).strip()
        if not ident:
            raise CorpusError("empty id", path=path, line=lineno, field="id")
        if ident in seen:
            raise CorpusError(f"duplicate id {ident!r}", path=path, line=lineno, field="id")
        seen.add(ident)
        src = row.get("src_lang") or src_lang
        tgt = row.get("tgt_lang") or tgt_lang
        if not src or not tgt:
            raise CorpusError("no src_lang/tgt_lang in the row; pass --src-lang and --tgt-lang",
                              path=path, line=lineno)
        pairs.append(Pair(id=ident, source=" ".join(row["source"].split()),
                          target=" ".join(row["target"].split()), src_lang=src, tgt_lang=tgt,
                          meta={"file": str(path), "line": str(lineno)}))
    if not pairs:
        raise CorpusError("no rows", path=path)
    return pairs


def _condition_path(entry: Path) -> list[Path]:
    """The JSONL file(s) of one condition entry: the file itself, or every ``*.jsonl`` in a folder."""
    if entry.is_dir():
        return sorted(entry.glob("*.jsonl"))
    return [entry]


def discover_conditions(split_dir: str | Path, include: Sequence[str] = DEFAULT_INCLUDE) -> dict[str, list[Path]]:
    """Condition name -> its files in ``split_dir``: ``real`` first, then names matching ``include``."""
    split_dir = Path(split_dir)
    if not split_dir.is_dir():
        raise CorpusError("is not a folder of condition files", path=split_dir)
    found: dict[str, list[Path]] = {}
    for entry in sorted(split_dir.iterdir()):
        name = entry.stem if entry.is_file() and entry.suffix == ".jsonl" else entry.name if entry.is_dir() else None
        if name is None or not (name == REAL or any(fnmatch.fnmatchcase(name, pat) for pat in include)):
            continue
        files = _condition_path(entry)
        if files:
            if name in found:
                raise CorpusError(f"condition {name!r} is both a file and a folder", path=entry)
            found[name] = files
    if REAL not in found:
        raise CorpusError(f"no {REAL}.jsonl (or {REAL}/ folder) with the human targets", path=split_dir)
    return {REAL: found.pop(REAL), **found}


def load_conditions(split_dir: str | Path | None = None, *, real: str | Path | None = None,
                    generated: Mapping[str, str | Path] | None = None, include: Sequence[str] = DEFAULT_INCLUDE,
                    src_lang: str | None = None, tgt_lang: str | None = None) -> dict[str, list[Pair]]:
    """Read every condition: from ``split_dir`` and/or explicit files (explicit ones win)."""
    paths: dict[str, list[Path]] = {}
    if split_dir is not None:
        paths.update(discover_conditions(split_dir, include))
    if real is not None:
        paths[REAL] = [Path(real)]
    for name, path in (generated or {}).items():
        if name == REAL:
            raise CorpusError(f"a generated condition cannot be called {REAL!r}", path=path)
        paths[name] = [Path(path)]
    if REAL not in paths:
        raise CorpusError("no human condition: give SPLIT_DIR with real.jsonl, or --real FILE")
    if len(paths) < 2:
        raise CorpusError("no generated condition to compare: regurg_*.jsonl in SPLIT_DIR or --generated NAME=FILE")
    out: dict[str, list[Pair]] = {}
    for name in [REAL, *(n for n in paths if n != REAL)]:
        pairs: list[Pair] = []
        for file in paths[name]:
            pairs += read_condition_file(file, src_lang=src_lang, tgt_lang=tgt_lang)
        ids = [p.id for p in pairs]
        if len(set(ids)) != len(ids):
            raise CorpusError(f"condition {name!r}: an id occurs in more than one of its files", path=paths[name][0])
        out[name] = pairs
    return out
