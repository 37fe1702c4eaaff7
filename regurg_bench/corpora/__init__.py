"""Corpus sources: one small class per source, all yielding :class:`Pair` objects, in a registry.

Importing this package registers every built-in source (``bible``, ``tsv``, ``jsonl``, ``moses``,
``hf``). Sources are looked up by name with :func:`get_corpus` or built from a spec string with
:func:`corpus_from_spec`.
"""

from regurg_bench.corpora.base import CorpusError, CorpusSource, Pair, fingerprint_pairs, language_name
from regurg_bench.corpora.registry import CORPUS_SOURCES, get_corpus, register_corpus

# Import for their registration side effect.
from regurg_bench.corpora import bible, hf, local  # noqa: F401  isort: skip

__all__ = [
    "CORPUS_SOURCES",
    "CorpusError",
    "CorpusSource",
    "Pair",
    "fingerprint_pairs",
    "get_corpus",
    "language_name",
    "register_corpus",
]
