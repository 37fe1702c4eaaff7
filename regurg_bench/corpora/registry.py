"""Registry of corpus sources (a :class:`regurg_bench.registry.Registry`), filled by ``@register_corpus``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from regurg_bench.corpora.base import CorpusSource
from regurg_bench.registry import Registry

#: name -> :class:`CorpusSource` class; importing :mod:`regurg_bench.corpora` registers the built-in ones.
CORPUS_SOURCES: Registry[CorpusSource] = Registry("corpus source", attribute="name",
                                                  modules=("regurg_bench.corpora",))


def register_corpus(name: str) -> Callable[[type[CorpusSource]], type[CorpusSource]]:
    """Class decorator: register a :class:`CorpusSource` under ``name`` (sets ``cls.name``)."""
    return CORPUS_SOURCES.register(name)


def get_corpus(name: str, /, **kwargs: Any) -> CorpusSource:
    """Instantiate the registered source ``name`` with ``kwargs`` (``name`` is positional-only: the hf source
    takes a ``name=`` option of its own, the dataset config). Unknown names raise
    :class:`~regurg_bench.registry.UnknownNameError`."""
    return CORPUS_SOURCES.get(name)(**kwargs)
