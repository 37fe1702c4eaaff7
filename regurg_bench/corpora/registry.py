"""Registry of corpus sources: a name -> class table, filled by the ``@register_corpus`` decorator."""

from __future__ import annotations

from typing import Any, TypeVar

from regurg_bench.corpora.base import CorpusSource

CORPUS_SOURCES: dict[str, type[CorpusSource]] = {}

_T = TypeVar("_T", bound=type[CorpusSource])


def register_corpus(name: str):
    """Class decorator: register a :class:`CorpusSource` under ``name``."""

    def decorate(cls: _T) -> _T:
        if name in CORPUS_SOURCES and CORPUS_SOURCES[name] is not cls:
            raise ValueError(f"corpus source {name!r} is already registered by {CORPUS_SOURCES[name]}")
        cls.name = name
        CORPUS_SOURCES[name] = cls
        return cls

    return decorate


def get_corpus(name: str, /, **kwargs: Any) -> CorpusSource:
    """Instantiate the registered source ``name`` with ``kwargs`` (``name`` is positional-only: the hf source
    takes a ``name=`` option of its own, the dataset config)."""
    try:
        cls = CORPUS_SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(CORPUS_SOURCES)) or "(none)"
        raise KeyError(f"unknown corpus source {name!r}; registered: {known}") from None
    return cls(**kwargs)
