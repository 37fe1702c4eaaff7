"""What ``--preset paper-smoke`` needs before it runs, built once into the cache and named in the
preset by ``@paper-smoke/<asset>`` placeholders:

* ``bible-es-en``: a Hugging Face ``save_to_disk`` DatasetDict (``train``, ``test``) in Europarl's
  nested layout (``{"translation": {"es": ..., "en": ...}}``), made from the embedded Bible corpus, so
  the run reads its training corpus and its ``regurg_mt_custom`` test set through the ``hf:`` source
  exactly as ``--preset paper`` reads ``hf:Helsinki-NLP/europarl``;
* ``comet-qe-test-only``: a TEST-ONLY COMET-QE checkpoint (MiniLM encoder, untrained head; its
  signature says ``test-only:yes``) for M1's ``qe_model``: it proves the COMET-QE code path, its scores
  mean nothing. Building it creates the COMET environment on first use (~1 min).

Both are built under a lock into a temporary folder and ``os.replace``-d into place, so a folder under
its final name is always complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from regurg_bench.assets import cache_dir, file_lock

PLACEHOLDER = "@paper-smoke/"
#: bump when an asset's content changes: a new folder is then built
ASSETS_VERSION = 1


def smoke_dir() -> Path:
    return cache_dir() / f"paper-smoke-v{ASSETS_VERSION}"


def _build_once(name: str, make) -> Path:
    root = smoke_dir()
    final = root / name
    if final.exists():
        return final
    with file_lock(root / f".{name}.lock"):
        if final.exists():
            return final
        tmp = root / f".{name}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        make(tmp)
        os.replace(tmp, final)
    return final


def _make_bible_dataset(out: Path) -> None:
    import datasets

    from regurg_bench.corpora.bible import load_bible_pairs

    def split(name: str) -> datasets.Dataset:
        pairs = load_bible_pairs("es-en", name)
        return datasets.Dataset.from_dict({"translation": [{"es": p.source, "en": p.target} for p in pairs]})

    datasets.DatasetDict({"train": split("train"), "test": split("test")}).save_to_disk(str(out))


def _make_comet_qe(out: Path) -> None:
    from regurg_bench.metrics.comet import build_test_checkpoint
    from regurg_bench.metrics.comet_env import comet_python

    comet_python(create=True)
    build_test_checkpoint(out, kind="qe")


ASSETS = {"bible-es-en": _make_bible_dataset, "comet-qe-test-only": _make_comet_qe}


def placeholders(data: Any) -> set[str]:
    """The ``@paper-smoke/<asset>`` names used anywhere in a config dump."""
    if isinstance(data, dict):
        return set().union(*(placeholders(v) for v in data.values())) if data else set()
    if isinstance(data, list):
        return set().union(*(placeholders(v) for v in data)) if data else set()
    if isinstance(data, str) and PLACEHOLDER in data:
        return {data.split(PLACEHOLDER, 1)[1].split("/", 1)[0]}
    return set()


def _substitute(data: Any, root: str) -> Any:
    if isinstance(data, dict):
        return {k: _substitute(v, root) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute(v, root) for v in data]
    if isinstance(data, str):
        return data.replace(PLACEHOLDER, root + "/")
    return data


def prepare(cfg):
    """``cfg`` with its ``@paper-smoke/`` placeholders replaced by the built assets' folders (each built
    at first use); ``cfg`` itself when it has none."""
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.protocol.config import _validate

    data = cfg.model_dump(mode="json")
    names = placeholders(data)
    unknown = sorted(names - set(ASSETS))
    if unknown:
        raise ConfigError(f"unknown {PLACEHOLDER} assets {unknown}; known: {sorted(ASSETS)}")
    if not names:
        return cfg
    for name in sorted(names):
        _build_once(name, ASSETS[name])
    return _validate(_substitute(data, str(smoke_dir())), f"{cfg.name} (with {PLACEHOLDER} assets)")
