"""Local file corpora: tab-separated (``tsv``), JSON lines (``jsonl``) and Moses-style aligned text (``moses``).

All three stream their files line by line (a multi-gigabyte corpus costs no memory beyond the ids seen
so far, kept to detect duplicates) and validate while reading: every problem is a :class:`CorpusError`
naming the file, the line and, where there is one, the column or field.

Lines are read and decoded by :mod:`regurg_bench.corpora.lines` (strict UTF-8, one line at a time, so a
bad byte is reported with its line number).
"""

from __future__ import annotations

import csv
import re
from abc import abstractmethod
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import CorpusError, CorpusSource, Pair, check_unique_ids
from regurg_bench.corpora.lines import check_file as _check_file
from regurg_bench.corpora.lines import iter_json_objects
from regurg_bench.corpora.lines import read_lines as _read_lines
from regurg_bench.corpora.registry import register_corpus
from regurg_bench.hashing import file_sha256


def normalize_whitespace(text: str) -> str:
    """Strip surrounding whitespace and collapse internal runs of whitespace to one space.

    Uses :meth:`str.split`, so every Unicode space counts (tabs, newlines, no-break spaces): corpora
    differ in these invisibly, and metrics such as BLEU should not.
    """
    return " ".join(text.split())


#: C0 control characters and DEL, except tab, newline and carriage return (whitespace the formats
#: themselves handle). A NUL or an escape sequence in corpus text is a broken file, never a translation.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _check_controls(text: str, *, path: Path, line: int, field: str, what: str) -> None:
    bad = _CONTROL.search(text)
    if bad:
        raise CorpusError(f"{what} contains the control character U+{ord(bad.group()):04X} at character "
                          f"{bad.start() + 1} (NUL and other control characters are not text)",
                          path=path, line=line, field=field)


def _text_field(value: Any, *, path: Path, line: int, field: str, side: str) -> str:
    """Validate and normalise one side of a pair: it must be a non-empty string after normalising."""
    if not isinstance(value, str):
        raise CorpusError(f"{side} text must be a string, found {type(value).__name__}",
                          path=path, line=line, field=field)
    _check_controls(value, path=path, line=line, field=field, what=f"{side} text")
    text = normalize_whitespace(value)
    if not text:
        raise CorpusError(f"empty {side} text", path=path, line=line, field=field)
    return text


def _id_value(value: Any, *, path: Path, line: int, field: str) -> str:
    """Validate an explicit id: a non-empty string (or an integer, common in JSON) -> stripped string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise CorpusError(f"id must be a string or integer, found {type(value).__name__}",
                          path=path, line=line, field=field)
    _check_controls(value, path=path, line=line, field=field, what="id")
    ident = value.strip()
    if not ident:
        raise CorpusError("empty id", path=path, line=line, field=field)
    return ident


def _file_provenance(path: Path) -> dict[str, Any]:
    """Path, size and sha256 of one file. Reads the whole file, so only called from provenance()."""
    _check_file(path)
    return {"path": str(path), "size_bytes": path.stat().st_size, "sha256": file_sha256(path)}


class _SingleFileCorpus(CorpusSource):
    """Shared plumbing for one-file formats: path checks, pair construction, provenance."""

    def __init__(self, path: str | Path, src_lang: str, tgt_lang: str) -> None:
        self.path = Path(path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        _check_file(self.path)

    def _pair(self, ident: str | None, source: str, target: str, lineno: int) -> Pair:
        # Generated ids use the physical line number: stable as long as the file is unchanged, and
        # it points straight at the line.
        return Pair(id=ident if ident is not None else f"{self.path.stem}.{lineno}",
                    source=source, target=target, src_lang=self.src_lang, tgt_lang=self.tgt_lang,
                    meta={"corpus": self.name, "file": str(self.path), "line": str(lineno)})

    def iter_pairs(self) -> Iterator[Pair]:
        return check_unique_ids(self._read_pairs(), path=self.path)

    @abstractmethod
    def _read_pairs(self) -> Iterator[Pair]:
        """Yield validated pairs in file order (duplicate ids are checked by iter_pairs)."""

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), **_file_provenance(self.path)}


@register_corpus("tsv")
class TsvCorpus(_SingleFileCorpus):
    """Tab-separated pairs, one per line. Blank lines are skipped.

    With ``header=True`` the first line names the columns; ``id_column`` is optional (when the header
    lacks it, ids are ``<file stem>.<line number>``). With ``header=False`` every row is
    ``source<TAB>target`` or ``id<TAB>source<TAB>target``; the first row fixes which, for the file.
    Quotes are ordinary characters (``QUOTE_NONE``): translated text is full of them.
    """

    def __init__(self, path: str | Path, src_lang: str, tgt_lang: str, *, source_column: str = "source",
                 target_column: str = "target", id_column: str | None = "id", header: bool = True) -> None:
        super().__init__(path, src_lang, tgt_lang)
        self.source_column, self.target_column = source_column, target_column
        self.id_column, self.header = id_column, header

    def _split(self, text: str, lineno: int) -> list[str]:
        try:
            return next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE), [])
        except csv.Error as exc:
            # In practice a stray carriage return: mixed line endings that glued rows together.
            raise CorpusError(f"malformed TSV row: {exc}", path=self.path, line=lineno) from None

    def _read_pairs(self) -> Iterator[Pair]:
        lines = _read_lines(self.path)
        if self.header:
            yield from self._rows_with_header(lines)
        else:
            yield from self._rows_without_header(lines)

    def _rows_with_header(self, lines: Iterator[tuple[int, str]]) -> Iterator[Pair]:
        header_line = next(lines, None)
        if header_line is None:
            raise CorpusError("file is empty; expected a header line naming the columns "
                              "(or pass header=False)", path=self.path, line=1)
        columns = [name.strip() for name in self._split(header_line[1], 1)]
        duplicated = sorted(c for c, n in Counter(columns).items() if n > 1)  # linear: headers can be huge
        if duplicated:
            raise CorpusError(f"header names column(s) {', '.join(map(repr, duplicated))} more than once",
                              path=self.path, line=1)
        for column in (self.source_column, self.target_column):
            if column not in columns:
                raise CorpusError(f"header has no {column!r} column (columns: {', '.join(columns)}); "
                                  "pass source_column=/target_column= or header=False",
                                  path=self.path, line=1, field=column)
        index = {name: i for i, name in enumerate(columns)}
        id_index = index.get(self.id_column) if self.id_column else None
        for lineno, text in lines:
            if not text.strip():
                continue
            row = self._split(text, lineno)
            if len(row) != len(columns):
                # A tab inside the text shifts every later column: never guess, report it.
                raise CorpusError(f"row has {len(row)} tab-separated columns but the header has "
                                  f"{len(columns)} ({', '.join(columns)})", path=self.path, line=lineno)
            ident = (None if id_index is None
                     else _id_value(row[id_index], path=self.path, line=lineno, field=self.id_column))
            source = _text_field(row[index[self.source_column]], path=self.path, line=lineno,
                                 field=self.source_column, side="source")
            target = _text_field(row[index[self.target_column]], path=self.path, line=lineno,
                                 field=self.target_column, side="target")
            yield self._pair(ident, source, target, lineno)

    def _rows_without_header(self, lines: Iterator[tuple[int, str]]) -> Iterator[Pair]:
        width: int | None = None
        for lineno, text in lines:
            if not text.strip():
                continue
            row = self._split(text, lineno)
            if len(row) not in (2, 3):
                raise CorpusError(f"expected 2 tab-separated columns (source, target) or 3 (id, source, "
                                  f"target), found {len(row)}", path=self.path, line=lineno)
            if width is None:
                width = len(row)
            elif len(row) != width:
                raise CorpusError(f"row has {len(row)} tab-separated columns but earlier rows have "
                                  f"{width}", path=self.path, line=lineno)
            ident = _id_value(row[0], path=self.path, line=lineno, field="id") if width == 3 else None
            source = _text_field(row[-2], path=self.path, line=lineno, field="source", side="source")
            target = _text_field(row[-1], path=self.path, line=lineno, field="target", side="target")
            yield self._pair(ident, source, target, lineno)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "header": self.header, "source_column": self.source_column,
                "target_column": self.target_column, "id_column": self.id_column}


@register_corpus("jsonl")
class JsonlCorpus(_SingleFileCorpus):
    """One JSON object per line with the source and target text (and optionally an id). Blank lines are
    skipped; objects lacking the id field get ``<file stem>.<line number>``."""

    def __init__(self, path: str | Path, src_lang: str, tgt_lang: str, *, source_field: str = "source",
                 target_field: str = "target", id_field: str | None = "id") -> None:
        super().__init__(path, src_lang, tgt_lang)
        self.source_field, self.target_field, self.id_field = source_field, target_field, id_field

    def _read_pairs(self) -> Iterator[Pair]:
        for lineno, row in iter_json_objects(self.path):
            for key in (self.source_field, self.target_field):
                if key not in row:
                    raise CorpusError(f"object has no {key!r} key (keys: {', '.join(row) or 'none'})",
                                      path=self.path, line=lineno, field=key)
            ident = None
            if self.id_field and self.id_field in row:
                ident = _id_value(row[self.id_field], path=self.path, line=lineno, field=self.id_field)
            source = _text_field(row[self.source_field], path=self.path, line=lineno,
                                 field=self.source_field, side="source")
            target = _text_field(row[self.target_field], path=self.path, line=lineno,
                                 field=self.target_field, side="target")
            yield self._pair(ident, source, target, lineno)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "source_field": self.source_field,
                "target_field": self.target_field, "id_field": self.id_field}


@register_corpus("moses")
class MosesCorpus(CorpusSource):
    """Moses-style aligned plain text: ``PREFIX.<src_lang>`` and ``PREFIX.<tgt_lang>``, line ``n`` of one
    translating line ``n`` of the other. Ids are ``<prefix name>.<line number>`` (the same in both
    directions, so a reversed corpus shares ids). Every line must be non-empty on both sides."""

    def __init__(self, prefix: str | Path, src_lang: str, tgt_lang: str) -> None:
        if src_lang == tgt_lang:
            raise CorpusError(f"source and target language are both {src_lang!r}", path=prefix,
                              field="tgt_lang")
        self.prefix = Path(prefix)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_path = Path(f"{prefix}.{src_lang}")
        self.tgt_path = Path(f"{prefix}.{tgt_lang}")
        _check_file(self.src_path)
        _check_file(self.tgt_path)

    def iter_pairs(self) -> Iterator[Pair]:
        # No duplicate-id check: ids are line numbers, unique by construction.
        src_lines, tgt_lines = _read_lines(self.src_path), _read_lines(self.tgt_path)
        lineno = 0
        while True:
            src, tgt = next(src_lines, None), next(tgt_lines, None)
            if src is None and tgt is None:
                return
            if src is None or tgt is None:
                longer, shorter = (self.tgt_path, self.src_path) if src is None else (self.src_path,
                                                                                     self.tgt_path)
                raise CorpusError(f"misaligned: {shorter} ran out after line {lineno}, but this file "
                                  f"goes on (the two files must have the same number of lines)",
                                  path=longer, line=lineno + 1)
            lineno = src[0]
            source = _text_field(src[1], path=self.src_path, line=lineno, field="source", side="source")
            target = _text_field(tgt[1], path=self.tgt_path, line=lineno, field="target", side="target")
            yield Pair(id=f"{self.prefix.name}.{lineno}", source=source, target=target,
                       src_lang=self.src_lang, tgt_lang=self.tgt_lang,
                       meta={"corpus": self.name, "file": str(self.src_path), "line": str(lineno),
                             "target_file": str(self.tgt_path)})

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "prefix": str(self.prefix),
                "files": [_file_provenance(self.src_path), _file_provenance(self.tgt_path)]}
