"""Corpus specs: one short string names a corpus on the command line and in ``--metadata``.

=============================  =====================================================
``bible:en-es`` / ``bible:en-es:train``   the embedded Bible corpus, a direction and split (default test)
``tsv:PATH`` / ``PATH.tsv``     tab-separated, header ``id, source, target`` (id optional)
``jsonl:PATH`` / ``PATH.jsonl`` one JSON object per line with ``source``/``target`` (``id`` optional)
``moses:PREFIX``                ``PREFIX.<src_lang>`` + ``PREFIX.<tgt_lang>``, line-aligned
``hf:PATH_OR_ID``               a dataset saved with ``save_to_disk``, or a hub dataset (online)
=============================  =====================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import CorpusError, CorpusSource
from regurg_bench.corpora.registry import CORPUS_SOURCES, get_corpus

_SUFFIX_KIND = {".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}


def _infer_kind(path: str, src_lang: str | None) -> str:
    p = Path(path)
    if p.suffix in _SUFFIX_KIND:
        return _SUFFIX_KIND[p.suffix]
    if p.is_dir():
        return "hf"
    if src_lang and Path(f"{path}.{src_lang}").exists():
        return "moses"
    raise CorpusError("cannot tell the corpus format; prefix the path with one of "
                      + ", ".join(f"'{k}:'" for k in sorted(CORPUS_SOURCES)), path=path)


def spec_kind(spec: str, src_lang: str | None = None) -> str:
    """The corpus kind a spec names (``tsv``, ``jsonl``, ``bible``, ...), without opening anything."""
    kind, sep, _rest = spec.partition(":")
    if not sep or kind not in CORPUS_SOURCES or (len(kind) == 1 and Path(spec).exists()):
        return _infer_kind(spec, src_lang)
    return kind


def header_options(spec: str, src_lang: str | None, no_header: bool) -> dict[str, Any]:
    """``{"header": False}`` for a TSV spec when the command line says ``--no-header``; an error for
    other kinds (the option would be silently ignored)."""
    if not no_header:
        return {}
    kind = spec_kind(spec, src_lang)
    if kind != "tsv":
        raise CorpusError(f"--no-header applies to TSV corpora only; this spec is a {kind} corpus", path=spec)
    return {"header": False}


def corpus_from_spec(spec: str, src_lang: str | None = None, tgt_lang: str | None = None,
                     **options: Any) -> CorpusSource:
    """Build a corpus source from a spec string (see the module docstring)."""
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in CORPUS_SOURCES or (len(kind) == 1 and Path(spec).exists()):
        kind, rest = _infer_kind(spec, src_lang), spec  # a bare path (or a Windows drive letter)
    if kind == "bible":
        direction, _, split = rest.partition(":")
        source = get_corpus("bible", direction=direction, split=split or "test", **options)
        for want, have, field in ((src_lang, source.src_lang, "src_lang"),
                                  (tgt_lang, source.tgt_lang, "tgt_lang")):
            if want and want != have:
                raise CorpusError(f"{spec} is {source.src_lang}->{source.tgt_lang}, but {field}={want}",
                                  path=spec, field=field)
        return source
    if not src_lang or not tgt_lang:
        raise CorpusError(f"a {kind} corpus needs src_lang and tgt_lang", path=rest,
                          field="src_lang" if not src_lang else "tgt_lang")
    first = "prefix" if kind == "moses" else "path"
    return get_corpus(kind, **{first: rest}, src_lang=src_lang, tgt_lang=tgt_lang, **options)
