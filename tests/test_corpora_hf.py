"""Hugging Face dataset corpora: save_to_disk directories (both row layouts) and the real load_dataset path.

Everything is offline: datasets are built in the test and saved under tmp_path, and the load_dataset path
uses the packaged ``json`` builder on a local file.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import datasets
import pytest

from regurg_bench.corpora.base import CorpusError
from regurg_bench.corpora.hf import HFDatasetCorpus
from regurg_bench.corpora.registry import CORPUS_SOURCES

HF_PY = Path(__file__).resolve().parents[1] / "regurg_bench" / "corpora" / "hf.py"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may reach the hub. datasets reads the variables at import, so patch its config too."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)


def triples(pairs) -> list[tuple[str, str, str]]:
    return [(p.id, p.source, p.target) for p in pairs]


def error_of(source) -> CorpusError:
    with pytest.raises(CorpusError) as info:
        list(source)
    return info.value


@pytest.fixture
def nested_dir(tmp_path) -> Path:
    """A europarl/wmt14-shaped DatasetDict: {"translation": {"de": ..., "en": ...}}, two splits."""
    path = tmp_path / "europarl-mini"
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"translation": [
            {"de": "Guten Morgen", "en": "Good morning"},
            {"de": "Danke", "en": "Thank you"},
            {"de": "Bitte", "en": "Please"},
        ]}),
        "test": datasets.Dataset.from_dict({"translation": [
            {"de": "  Hallo   Welt ", "en": "Hello\tworld"},
            {"de": "Tschüss", "en": "Bye"},
        ]}),
    }).save_to_disk(str(path))
    return path


@pytest.fixture
def flat_dir(tmp_path) -> Path:
    path = tmp_path / "flat"
    datasets.DatasetDict({"validation": datasets.Dataset.from_dict({
        "uid": ["v1", "v2"], "src": ["one", "two"], "tgt": ["uno", "dos"], "extra": [1, 2]})}
    ).save_to_disk(str(path))
    return path


def save_rows(path: Path, rows: dict[str, list], split: str = "test") -> Path:
    datasets.DatasetDict({split: datasets.Dataset.from_dict(rows)}).save_to_disk(str(path))
    return path


# -- save_to_disk directories ----------------------------------------------------------------------------


def test_registered():
    assert CORPUS_SOURCES["hf"] is HFDatasetCorpus


def test_nested_translation_layout_and_split_selection(nested_dir):
    test = list(HFDatasetCorpus(nested_dir, "de", "en"))  # split defaults to "test"
    assert triples(test) == [("europarl-mini.test.0", "Hallo Welt", "Hello world"),
                             ("europarl-mini.test.1", "Tschüss", "Bye")]
    assert test[0].meta == {"corpus": "hf", "dataset": str(nested_dir), "split": "test", "line": "0"}
    assert (test[0].src_lang, test[0].tgt_lang) == ("de", "en")
    train = list(HFDatasetCorpus(str(nested_dir), "en", "de", split="train"))
    assert triples(train) == [("europarl-mini.train.0", "Good morning", "Guten Morgen"),
                              ("europarl-mini.train.1", "Thank you", "Danke"),
                              ("europarl-mini.train.2", "Please", "Bitte")]


def test_flat_layout_with_id_field(flat_dir):
    corpus = HFDatasetCorpus(flat_dir, "en", "es", split="validation", source_field="src",
                             target_field="tgt", id_field="uid")
    assert triples(corpus) == [("v1", "one", "uno"), ("v2", "two", "dos")]


def test_single_saved_dataset(tmp_path):
    path = tmp_path / "single"
    datasets.Dataset.from_dict({"translation": [{"en": "yes", "fr": "oui"}]}).save_to_disk(str(path))
    assert triples(HFDatasetCorpus(path, "en", "fr")) == [("single.test.0", "yes", "oui")]


def test_unknown_split(nested_dir):
    err = error_of(HFDatasetCorpus(nested_dir, "de", "en", split="dev"))
    assert str(err).startswith(f"{nested_dir} (field 'split'): ")
    assert "no split 'dev'" in str(err) and "train, test" in str(err)


def test_provenance_of_saved_dataset(nested_dir):
    info = HFDatasetCorpus(nested_dir, "de", "en", split="train").provenance()
    expected = datasets.load_from_disk(str(nested_dir))["train"]._fingerprint
    assert info["fingerprint"] == expected
    assert {k: info[k] for k in ("source", "path", "name", "split", "revision", "loader")} == {
        "source": "hf", "path": str(nested_dir), "name": None, "split": "train", "revision": None,
        "loader": "load_from_disk"}
    json.dumps(info)


# -- bad input -------------------------------------------------------------------------------------------


def test_missing_language_key(nested_dir):
    err = error_of(HFDatasetCorpus(nested_dir, "fr", "en"))
    assert str(err).startswith(f"{nested_dir}:0 (field 'translation.fr'): ")
    assert "no 'fr' (source) text" in str(err) and "de, en" in str(err)


def test_missing_flat_field(flat_dir):
    err = error_of(HFDatasetCorpus(flat_dir, "en", "es", split="validation", source_field="src",
                                   target_field="target"))
    assert str(err).startswith(f"{flat_dir}:0 (field 'target'): ")
    assert "no 'target' field" in str(err)


def test_flat_columns_given_for_nested_layout_or_the_reverse(flat_dir):
    err = error_of(HFDatasetCorpus(flat_dir, "en", "es", split="validation"))
    assert str(err).startswith(f"{flat_dir}:0 (field 'translation'): ") and "no 'translation' field" in str(err)


def test_empty_target(tmp_path):
    path = save_rows(tmp_path / "empty", {"translation": [
        {"en": "a", "es": "b"}, {"en": "c", "es": "   "}, {"en": "e", "es": "f"}]})
    err = error_of(HFDatasetCorpus(path, "en", "es"))
    assert str(err).startswith(f"{path}:1 (field 'translation.es'): ")
    assert "empty target text" in str(err)


def test_empty_flat_source(tmp_path):
    path = save_rows(tmp_path / "flat-empty", {"s": ["x", ""], "t": ["y", "z"]})
    err = error_of(HFDatasetCorpus(path, "en", "es", source_field="s", target_field="t"))
    assert str(err).startswith(f"{path}:1 (field 's'): ") and "empty source text" in str(err)


def test_duplicate_ids(tmp_path):
    path = save_rows(tmp_path / "dups", {"id": ["a", "b", "a"], "s": ["1", "2", "3"], "t": ["x", "y", "z"]})
    err = error_of(HFDatasetCorpus(path, "en", "es", source_field="s", target_field="t", id_field="id"))
    assert str(err).startswith(f"{path}:2 (field 'id'): ")
    assert "duplicate id 'a'" in str(err) and "row 0" in str(err)


def test_only_one_flat_field_is_an_error(flat_dir):
    with pytest.raises(CorpusError, match="give both source_field and target_field"):
        HFDatasetCorpus(flat_dir, "en", "es", source_field="src")


def test_load_dataset_options_rejected_for_saved_directory(flat_dir):
    with pytest.raises(CorpusError, match="data_files only apply to load_dataset"):
        HFDatasetCorpus(flat_dir, "en", "es", data_files="x.json")


# -- the genuine load_dataset path -----------------------------------------------------------------------


@pytest.fixture
def load_calls(monkeypatch) -> list[tuple[tuple, dict]]:
    """Record every datasets.load_dataset call, then run the real function."""
    calls: list[tuple[tuple, dict]] = []
    real = datasets.load_dataset

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", spy)
    return calls


def test_load_dataset_flat_json(tmp_path, load_calls):
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in [
        {"pid": "p1", "en": "house", "es": "casa"}, {"pid": "p2", "en": "dog ", "es": " perro"}]))
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"pid": "o1", "en": "not", "es": "this split"}) + "\n")
    files = {"train": str(other), "test": str(data)}
    cache = tmp_path / "cache"
    corpus = HFDatasetCorpus("json", "en", "es", split="test", source_field="en", target_field="es",
                             id_field="pid", data_files=files, cache_dir=str(cache))
    assert triples(corpus) == [("p1", "house", "casa"), ("p2", "dog", "perro")]
    assert load_calls == [(("json", None), {"split": "test", "revision": None, "streaming": False,
                                            "data_files": files, "cache_dir": str(cache)})]
    assert cache.is_dir()  # the builder really ran, writing its Arrow cache where we told it
    info = corpus.provenance()
    assert info["loader"] == "load_dataset" and info["load_kwargs"]["data_files"] == files
    assert info["fingerprint"]  # known now that the dataset has been loaded


def test_load_dataset_nested_streaming(tmp_path, load_calls):
    data = tmp_path / "wmt-like.jsonl"
    data.write_text("".join(json.dumps({"translation": {"de": d, "en": e}}) + "\n"
                            for d, e in [("Haus", "house"), ("Hund", "dog")]))
    corpus = HFDatasetCorpus("json", "en", "de", split="train", streaming=True, data_files=str(data),
                             cache_dir=str(tmp_path / "cache"))
    assert triples(corpus) == [("json.train.0", "house", "Haus"), ("json.train.1", "dog", "Hund")]
    assert load_calls[0][1]["streaming"] is True
    assert isinstance(corpus._load(), datasets.IterableDataset)


def test_provenance_does_not_load_a_remote_dataset(load_calls):
    corpus = HFDatasetCorpus("Helsinki-NLP/europarl", "de", "en", name="de-en", split="train",
                             revision="main")
    info = corpus.provenance()
    assert load_calls == []  # no download just to describe the corpus
    assert (info["path"], info["name"], info["split"], info["revision"]) == (
        "Helsinki-NLP/europarl", "de-en", "train", "main")
    assert "fingerprint" not in info


def test_load_dataset_failure_is_a_corpus_error(tmp_path, load_calls):
    missing = tmp_path / "missing.jsonl"
    corpus = HFDatasetCorpus("json", "en", "es", split="train", data_files=str(missing),
                             cache_dir=str(tmp_path / "cache"))
    err = error_of(corpus)
    assert str(err).startswith("json: load_dataset failed (split 'train')")
    assert "missing.jsonl" in str(err) and err.__cause__ is not None
    assert len(load_calls) == 1


def test_datasets_is_imported_lazily():
    """``import regurg_bench.corpora`` must not pull in datasets: hf.py imports it inside methods only."""
    tree = ast.parse(HF_PY.read_text())
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    names = {alias.name.split(".")[0] for node in top_level if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {(node.module or "").split(".")[0] for node in top_level if isinstance(node, ast.ImportFrom)}
    assert "datasets" not in names
    assert "regurg_bench" in names  # sanity: the walk sees the module's real imports
