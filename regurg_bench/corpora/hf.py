"""Hugging Face ``datasets`` corpora: a dataset saved with ``save_to_disk``, or anything ``load_dataset`` reads.

Two row layouts are understood:

* nested, as in ``Helsinki-NLP/europarl`` or ``wmt/wmt14``: ``{"translation": {"de": "...", "en": "..."}}``,
  the text picked by language code (the default);
* flat: one column per side, named by ``source_field`` / ``target_field``.

``datasets`` is imported inside methods only: ``import regurg_bench.corpora`` stays light, and the
local-file sources work where ``datasets`` is broken or absent.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import CorpusError, CorpusSource, Pair
from regurg_bench.corpora.local import normalize_whitespace
from regurg_bench.corpora.registry import register_corpus

# Files ``save_to_disk`` writes: a DatasetDict writes the first, a single Dataset the second.
_SAVED_MARKERS = ("dataset_dict.json", "state.json")


def _is_saved_dataset(path: str) -> bool:
    """True for a directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``.

    Other local directories (a folder of CSV files, a dataset repo checkout) go to ``load_dataset``.
    """
    directory = Path(path)
    return directory.is_dir() and any((directory / marker).is_file() for marker in _SAVED_MARKERS)


def _json_safe(value: Any) -> Any:
    """Provenance must serialise; odd load_dataset options (Features, DownloadConfig) become repr()."""
    return json.loads(json.dumps(value, default=repr))


@register_corpus("hf")
class HFDatasetCorpus(CorpusSource):
    """One split of a Hugging Face dataset as aligned pairs.

    ``path`` is a ``save_to_disk`` directory (read with ``load_from_disk``; ``split`` picks from a
    DatasetDict) or anything ``datasets.load_dataset`` accepts: a hub id (needs internet), a packaged
    builder such as ``"json"`` with ``data_files=`` among ``load_kwargs``, a local folder of data files.
    ``name`` is the dataset config (e.g. ``"de-en"``), not the registry name.

    Ids come from ``id_field`` when given, else ``<basename of path>.<split>.<row index>``. Errors name
    the dataset path, the row index (reported as the line) and the field.
    """

    def __init__(self, path: str | Path, src_lang: str, tgt_lang: str, *, name: str | None = None,
                 split: str = "test", revision: str | None = None, source_field: str | None = None,
                 target_field: str | None = None, id_field: str | None = None,
                 translation_field: str = "translation", streaming: bool = False,
                 **load_kwargs: Any) -> None:
        if (source_field is None) != (target_field is None):
            missing = "target_field" if target_field is None else "source_field"
            raise CorpusError("give both source_field and target_field (flat columns) or neither "
                              "(nested translation field)", path=path, field=missing)
        self.path = str(path)
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        # ``self.name`` is the registry key (a ClassVar); the dataset config lives here.
        self.config_name, self.split, self.revision = name, split, revision
        self.source_field, self.target_field, self.id_field = source_field, target_field, id_field
        self.translation_field, self.streaming = translation_field, streaming
        self.load_kwargs = load_kwargs
        self.local = _is_saved_dataset(self.path)
        if self.local and load_kwargs:
            raise CorpusError(f"{', '.join(sorted(load_kwargs))} only apply to load_dataset, but this is "
                              "a save_to_disk directory (read with load_from_disk)", path=self.path)
        self._dataset: Any = None

    # -- loading ---------------------------------------------------------------------------------------

    def _load(self) -> Any:
        """The selected split as a ``Dataset`` (or ``IterableDataset`` when streaming); loaded once."""
        if self._dataset is None:
            self._dataset = self._load_from_disk() if self.local else self._load_dataset()
        return self._dataset

    def _load_from_disk(self) -> Any:
        import datasets

        # Arrow files are memory-mapped, so iterating already streams from disk; ``streaming`` is moot.
        loaded = datasets.load_from_disk(self.path)
        if isinstance(loaded, datasets.DatasetDict):
            if self.split not in loaded:
                raise CorpusError(f"no split {self.split!r} (splits: {', '.join(loaded)})",
                                  path=self.path, field="split")
            return loaded[self.split]
        # A single saved Dataset is its own split. Refuse a recorded, different one: ids carry the split.
        if loaded.split is not None and str(loaded.split) != self.split:
            raise CorpusError(f"this saved Dataset is split {str(loaded.split)!r}, not {self.split!r}; "
                              f"pass split={str(loaded.split)!r}", path=self.path, field="split")
        return loaded

    def _load_dataset(self) -> Any:
        import datasets

        try:
            loaded = datasets.load_dataset(self.path, self.config_name, split=self.split,
                                           revision=self.revision, streaming=self.streaming,
                                           **self.load_kwargs)
        except Exception as exc:  # hub, builder and split errors alike: add which corpus it was
            config = f", config {self.config_name!r}" if self.config_name else ""
            raise CorpusError(f"load_dataset failed (split {self.split!r}{config}): "
                              f"{type(exc).__name__}: {exc}", path=self.path) from exc
        if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
            # Only happens for exotic split strings; pick the split by name if we can.
            if self.split not in loaded:
                raise CorpusError(f"no split {self.split!r} (splits: {', '.join(loaded)})",
                                  path=self.path, field="split")
            loaded = loaded[self.split]
        return loaded

    # -- rows ------------------------------------------------------------------------------------------

    def _columns(self) -> list[str]:
        flat = self.source_field is not None
        columns = [self.source_field, self.target_field] if flat else [self.translation_field]
        return [c for c in columns + [self.id_field] if c is not None]

    def _text(self, value: Any, idx: int, field: str, side: str) -> str:
        if value is None:
            raise CorpusError(f"no {side} text (null)", path=self.path, line=idx, field=field)
        if not isinstance(value, str):
            raise CorpusError(f"{side} text must be a string, found {type(value).__name__}",
                              path=self.path, line=idx, field=field)
        text = normalize_whitespace(value)
        if not text:
            raise CorpusError(f"empty {side} text", path=self.path, line=idx, field=field)
        return text

    def _field(self, row: Mapping[str, Any], key: str, idx: int) -> Any:
        if key not in row:
            raise CorpusError(f"row has no {key!r} field (fields: {', '.join(row)})",
                              path=self.path, line=idx, field=key)
        return row[key]

    def _texts(self, row: Mapping[str, Any], idx: int) -> tuple[str, str]:
        if self.source_field is not None and self.target_field is not None:
            return (self._text(self._field(row, self.source_field, idx), idx, self.source_field, "source"),
                    self._text(self._field(row, self.target_field, idx), idx, self.target_field, "target"))
        block = self._field(row, self.translation_field, idx)
        if not isinstance(block, Mapping):
            raise CorpusError(f"expected a {{language: text}} mapping, found {type(block).__name__}; "
                              "for flat columns pass source_field= and target_field=",
                              path=self.path, line=idx, field=self.translation_field)
        texts = []
        for lang, side in ((self.src_lang, "source"), (self.tgt_lang, "target")):
            field = f"{self.translation_field}.{lang}"
            # Arrow stores a language absent from one row as None: the same problem as a missing key.
            if block.get(lang) is None:
                present = ", ".join(k for k, v in block.items() if v is not None) or "none"
                raise CorpusError(f"no {lang!r} ({side}) text; languages present: {present}",
                                  path=self.path, line=idx, field=field)
            texts.append(self._text(block[lang], idx, field, side))
        return texts[0], texts[1]

    def _ident(self, row: Mapping[str, Any], idx: int) -> str:
        if self.id_field is None:
            return f"{Path(self.path.rstrip('/')).name or self.path}.{self.split}.{idx}"
        value = self._field(row, self.id_field, idx)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str) or not value.strip():
            raise CorpusError(f"id must be a non-empty string or integer, found {value!r}",
                              path=self.path, line=idx, field=self.id_field)
        return value.strip()

    def iter_pairs(self) -> Iterator[Pair]:
        dataset = self._load()
        wanted = self._columns()
        names = dataset.column_names  # None for some streaming datasets: then rows are checked one by one
        if names is not None and all(c in names for c in wanted):
            # Skip decoding unrelated columns (audio, metadata...): they can dominate the read time.
            dataset = dataset.select_columns(wanted)
        first_row: dict[str, int] = {}
        for idx, row in enumerate(dataset):
            source, target = self._texts(row, idx)
            ident = self._ident(row, idx)
            if self.id_field is not None:  # generated ids are unique by construction
                if ident in first_row:
                    raise CorpusError(f"duplicate id {ident!r} (first seen at row {first_row[ident]})",
                                      path=self.path, line=idx, field=self.id_field)
                first_row[ident] = idx
            meta = {"corpus": self.name, "dataset": self.path, "split": self.split, "line": str(idx)}
            if self.config_name:
                meta["config"] = self.config_name
            yield Pair(id=ident, source=source, target=target, src_lang=self.src_lang,
                       tgt_lang=self.tgt_lang, meta=meta)

    def provenance(self) -> dict[str, Any]:
        info: dict[str, Any] = {**super().provenance(), "path": self.path, "name": self.config_name,
                                "split": self.split, "revision": self.revision,
                                "loader": "load_from_disk" if self.local else "load_dataset"}
        if self.load_kwargs:
            info["load_kwargs"] = _json_safe(self.load_kwargs)
        # A saved dataset is cheap to open (memory-mapped); a hub one is only fingerprinted if already
        # loaded, so asking for provenance never triggers a download.
        dataset = self._load() if self.local else self._dataset
        fingerprint = getattr(dataset, "_fingerprint", None)
        if fingerprint:
            info["fingerprint"] = fingerprint
        return info
