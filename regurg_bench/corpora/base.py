"""The corpus-source interface: one class per source, each yields aligned pairs with stable ids."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

#: Language codes we know a display name for (used in prompts and reports).
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "zh": "Chinese",
    "ja": "Japanese",
    "cs": "Czech",
}


def language_name(code: str) -> str:
    """English display name of a language code (the code itself when unknown)."""
    return LANGUAGE_NAMES.get(code, code)


class CorpusError(ValueError):
    """Bad corpus input. The message always names the file (and line/field when there is one)."""

    def __init__(self, problem: str, *, path: str | Path | None = None, line: int | None = None,
                 field: str | None = None) -> None:
        self.problem, self.path, self.line, self.field = problem, path, line, field
        where = str(path) if path is not None else "<corpus>"
        if line is not None:
            where += f":{line}"
        if field is not None:
            where += f" (field {field!r})"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True, slots=True)
class Pair:
    """One aligned translation pair.

    ``id`` is stable across runs and machines (it is derived from the corpus, never from row order
    after shuffling), so real and regurgitated splits built from the same sources share ids.
    ``meta`` holds provenance (corpus, file, line, book...) as plain strings.
    """

    id: str
    source: str
    target: str
    src_lang: str
    tgt_lang: str
    meta: Mapping[str, str] = field(default_factory=dict)

    def reversed(self) -> Pair:
        """The same pair in the opposite direction (same id)."""
        return dataclasses.replace(self, source=self.target, target=self.source,
                                   src_lang=self.tgt_lang, tgt_lang=self.src_lang)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "target": self.target,
                "src_lang": self.src_lang, "tgt_lang": self.tgt_lang, "meta": dict(self.meta)}


class CorpusSource(ABC):
    """One aligned split of one corpus in one direction.

    Subclasses set ``name`` (the registry key) and implement :meth:`iter_pairs`. They validate their
    input while reading and raise :class:`CorpusError` naming file, line and problem.
    """

    name: ClassVar[str]
    #: SPDX-like licence of the text, or "unknown" (reported in provenance).
    license: ClassVar[str] = "unknown"

    src_lang: str
    tgt_lang: str

    @abstractmethod
    def iter_pairs(self) -> Iterator[Pair]:
        """Yield the pairs in a deterministic order."""

    def provenance(self) -> dict[str, Any]:
        """Where the data comes from: enough to find and verify it again."""
        return {"source": self.name, "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
                "license": self.license}

    def __iter__(self) -> Iterator[Pair]:
        return self.iter_pairs()


def check_unique_ids(pairs: Iterable[Pair], *, path: str | Path | None = None) -> Iterator[Pair]:
    """Pass pairs through, raising :class:`CorpusError` on the first repeated id."""
    seen: dict[str, str] = {}
    for pair in pairs:
        if pair.id in seen:
            first = seen[pair.id]
            raise CorpusError(f"duplicate id {pair.id!r} (first seen at {first})",
                              path=path, line=_line_of(pair))
        seen[pair.id] = f"line {_line_of(pair)}" if _line_of(pair) else "an earlier row"
        yield pair


def _line_of(pair: Pair) -> int | None:
    line = pair.meta.get("line")
    return int(line) if line else None


class PairFingerprint:
    """Incremental content hash of pairs (id, source, target, languages), order-sensitive.

    Independent of Python version and platform: each row is hashed as canonical JSON plus a newline.
    """

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self.count = 0

    def update(self, pair: Pair) -> None:
        row = [pair.id, pair.source, pair.target, pair.src_lang, pair.tgt_lang]
        self._digest.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        self._digest.update(b"\n")
        self.count += 1

    def hexdigest(self) -> str:
        return "sha256:" + self._digest.hexdigest()


def fingerprint_pairs(pairs: Iterable[Pair]) -> str:
    """A stable content hash of pairs (see :class:`PairFingerprint`)."""
    fp = PairFingerprint()
    for pair in pairs:
        fp.update(pair)
    return fp.hexdigest()
