"""One JSON-lines parser for the whole package: every reader reports a broken file the same way."""

from __future__ import annotations

import json

import pytest

from regurg_bench.checks.stats import SplitError, read_rows
from regurg_bench.corpora.base import CorpusError
from regurg_bench.corpora.lines import iter_json_objects, read_json_objects
from regurg_bench.corpora.local import JsonlCorpus
from regurg_bench.diagnostics.loading import read_condition_file
from regurg_bench.training.data import load_split, read_id_list

GOOD = {"id": "a", "source": "hello", "target": "hola", "src_lang": "en", "tgt_lang": "es"}

READERS = {
    "iter_json_objects": lambda p: list(iter_json_objects(p)),
    "corpus jsonl": lambda p: list(JsonlCorpus(p, "en", "es").iter_pairs()),
    "diagnostics condition file": read_condition_file,
    "training split": lambda p: load_split(str(p)),
    "check gate rows": read_rows,
    "curriculum id list": read_id_list,
}
ERRORS = (CorpusError, SplitError)


def _write(path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_objects_in_order_blank_lines_and_bom_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    _write(path, [b"\xef\xbb\xbf" + json.dumps(GOOD).encode(), b"", b"  ", json.dumps({**GOOD, "id": "b"}).encode()])
    assert [(n, r["id"]) for n, r in iter_json_objects(path)] == [(1, "a"), (4, "b")]
    assert [r["id"] for r in read_json_objects(path)] == ["a", "b"]


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
@pytest.mark.parametrize(("bad_line", "message"), [
    (b'{"id": "b", "source": "x"', r"invalid JSON"),
    (b'{"id": "b", "source": "caf\xe9", "target": "y"}', r"not valid UTF-8: byte\(s\) e9"),
], ids=["broken-json", "latin-1-byte"])
def test_every_reader_names_file_and_line(tmp_path, reader, bad_line, message):
    path = tmp_path / "split.jsonl"
    _write(path, [json.dumps(GOOD).encode(), b"", bad_line])
    with pytest.raises(ERRORS, match=rf"split\.jsonl:3.*{message}"):
        READERS[reader](path)


@pytest.mark.parametrize("reader", [r for r in READERS if r != "curriculum id list"])
def test_every_row_reader_refuses_a_non_object_line(tmp_path, reader):
    path = tmp_path / "split.jsonl"
    _write(path, [json.dumps(GOOD).encode(), b'["a", "b"]'])
    with pytest.raises(ERRORS, match=r"split\.jsonl:2.*expected (a JSON object|an object)"):
        READERS[reader](path)


@pytest.mark.parametrize("reader", READERS, ids=list(READERS))
def test_every_reader_names_a_missing_file(tmp_path, reader):
    with pytest.raises(ERRORS, match=r"nothere\.jsonl.*(does not exist|no such)"):
        READERS[reader](tmp_path / "nothere.jsonl")


def test_id_list_accepts_strings_and_objects_and_refuses_other_rows(tmp_path):
    path = tmp_path / "order.jsonl"
    _write(path, [b'"a"', b'{"id": "b"}', b"7"])
    assert read_id_list(path) == ["a", "b", "7"]
    _write(path, [b'"a"', b'{"idx": "b"}'])
    with pytest.raises(CorpusError, match=r"order\.jsonl:2 \(field 'id'\)"):
        read_id_list(path)
