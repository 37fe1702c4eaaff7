"""Local file corpora (tsv, jsonl, moses): round trips, normalisation, streaming, and every bad-input kind.

All inputs are real files under tmp_path. Error tests check the message a user sees: file, line and
the words naming the problem.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from regurg_bench.corpora.base import CorpusError, Pair
from regurg_bench.corpora.local import JsonlCorpus, MosesCorpus, TsvCorpus, normalize_whitespace
from regurg_bench.corpora.registry import CORPUS_SOURCES, get_corpus


def write(path: Path, content: str | bytes) -> Path:
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def triples(pairs) -> list[tuple[str, str, str]]:
    return [(p.id, p.source, p.target) for p in pairs]


def error_of(source) -> CorpusError:
    with pytest.raises(CorpusError) as info:
        list(source)
    return info.value


# -- good input -------------------------------------------------------------------------------------------


def test_sources_are_registered():
    assert CORPUS_SOURCES["tsv"] is TsvCorpus
    assert CORPUS_SOURCES["jsonl"] is JsonlCorpus
    assert CORPUS_SOURCES["moses"] is MosesCorpus


def test_tsv_with_header_and_id(tmp_path):
    path = write(tmp_path / "dev.tsv", 'id\tsource\ttarget\n'
                                       'a1\tHe said "hi".\tDijo "hola".\n'
                                       "a2\tIt's 5\" long\tMide 5\"\n")
    pairs = list(TsvCorpus(path, "en", "es"))
    # Quotes are literal characters: QUOTE_NONE must not eat or pair them up.
    assert triples(pairs) == [("a1", 'He said "hi".', 'Dijo "hola".'), ("a2", 'It\'s 5" long', 'Mide 5"')]
    assert pairs[0] == Pair("a1", 'He said "hi".', 'Dijo "hola".', "en", "es",
                            {"corpus": "tsv", "file": str(path), "line": "2"})


def test_tsv_with_header_without_id_uses_stem_and_line(tmp_path):
    # Columns in another order, an extra column, a blank line (skipped but counted) and CRLF endings.
    path = write(tmp_path / "news.en-de.tsv", "target\tnote\tsource\r\n"
                                              "Hallo\tx\tHello\r\n"
                                              "\r\n"
                                              "Welt\ty\tWorld\r\n")
    pairs = list(TsvCorpus(path, "en", "de"))
    assert triples(pairs) == [("news.en-de.2", "Hello", "Hallo"), ("news.en-de.4", "World", "Welt")]
    assert [p.meta["line"] for p in pairs] == ["2", "4"]


def test_tsv_custom_columns(tmp_path):
    path = write(tmp_path / "c.tsv", "key\ten\tfr\nk1\tcat\tchat\n")
    corpus = TsvCorpus(path, "en", "fr", source_column="en", target_column="fr", id_column="key")
    assert triples(corpus) == [("k1", "cat", "chat")]
    # id_column=None ignores an id column even when the header has one.
    corpus = TsvCorpus(path, "en", "fr", source_column="en", target_column="fr", id_column=None)
    assert triples(corpus) == [("c.2", "cat", "chat")]


def test_tsv_without_header_two_columns(tmp_path):
    path = write(tmp_path / "plain.tsv", "source\ttarget\none\tuno\n")
    # header=False: the first line is data, not column names.
    assert triples(TsvCorpus(path, "en", "es", header=False)) == [
        ("plain.1", "source", "target"), ("plain.2", "one", "uno")]


def test_tsv_without_header_three_columns(tmp_path):
    path = write(tmp_path / "ids.tsv", "x7\tone\tuno\nx8\ttwo\tdos\n")
    assert triples(TsvCorpus(path, "en", "es", header=False)) == [("x7", "one", "uno"), ("x8", "two", "dos")]


def test_jsonl_round_trip(tmp_path):
    rows = [{"id": "r1", "source": "Good morning", "target": "Buenos días"},
            {"id": 7, "source": "Night", "target": "Noche", "extra": [1, 2]},
            {"source": "No id", "target": "Sin id"}]
    text = "\n".join(json.dumps(r, ensure_ascii=False) for r in rows[:2]) + "\n\n" + json.dumps(rows[2]) + "\n"
    path = write(tmp_path / "set.jsonl", text)
    pairs = list(JsonlCorpus(path, "en", "es"))
    assert triples(pairs) == [("r1", "Good morning", "Buenos días"), ("7", "Night", "Noche"),
                              ("set.4", "No id", "Sin id")]
    assert pairs[2].meta == {"corpus": "jsonl", "file": str(path), "line": "4"}


def test_jsonl_custom_fields(tmp_path):
    path = write(tmp_path / "f.jsonl", json.dumps({"uid": "u", "en": "dog", "de": "Hund"}) + "\n")
    corpus = JsonlCorpus(path, "en", "de", source_field="en", target_field="de", id_field="uid")
    assert triples(corpus) == [("u", "dog", "Hund")]


def test_moses_round_trip_and_reverse_shares_ids(tmp_path):
    write(tmp_path / "train.en", "Hello\nGood night\n")
    write(tmp_path / "train.fr", "Bonjour\nBonne nuit\n")
    forward = list(MosesCorpus(tmp_path / "train", "en", "fr"))
    assert triples(forward) == [("train.1", "Hello", "Bonjour"), ("train.2", "Good night", "Bonne nuit")]
    assert forward[1].meta["file"] == str(tmp_path / "train.en")
    assert forward[1].meta["line"] == "2"
    backward = list(MosesCorpus(str(tmp_path / "train"), "fr", "en"))
    assert triples(backward) == [("train.1", "Bonjour", "Hello"), ("train.2", "Bonne nuit", "Good night")]


def test_get_corpus_builds_local_sources(tmp_path):
    path = write(tmp_path / "g.jsonl", '{"source": "a", "target": "b"}\n')
    corpus = get_corpus("jsonl", path=str(path), src_lang="en", tgt_lang="es")
    assert isinstance(corpus, JsonlCorpus) and triples(corpus) == [("g.1", "a", "b")]


# -- normalisation, ids, streaming, provenance ------------------------------------------------------------


def test_normalize_whitespace():
    assert normalize_whitespace("  a \t b\n\nc\u00a0\u00a0d  ") == "a b c d"
    assert normalize_whitespace(" \t\n ") == ""


def test_whitespace_is_normalised_in_every_format(tmp_path):
    tsv = write(tmp_path / "w.tsv", "source\ttarget\n  two   spaces \t\u00a0non-break\u00a0 space\n")
    jsonl = write(tmp_path / "w.jsonl", json.dumps({"source": "line\nbreak\t tab", "target": " x  y "}) + "\n")
    write(tmp_path / "w.en", "  lead and   trail  \r\n")
    write(tmp_path / "w.es", "\tcon \t tab\n")
    assert triples(TsvCorpus(tsv, "en", "es")) == [("w.2", "two spaces", "non-break space")]
    assert triples(JsonlCorpus(jsonl, "en", "es")) == [("w.1", "line break tab", "x y")]
    assert triples(MosesCorpus(tmp_path / "w", "en", "es")) == [("w.1", "lead and trail", "con tab")]


def test_byte_order_mark_is_dropped(tmp_path):
    path = write(tmp_path / "bom.tsv", "\ufeffid\tsource\ttarget\nb1\tx\ty\n")
    assert triples(TsvCorpus(path, "en", "es")) == [("b1", "x", "y")]


def test_ids_are_stable_across_instances(tmp_path):
    path = write(tmp_path / "s.tsv", "source\ttarget\n" + "".join(f"s{i}\tt{i}\n" for i in range(50)))
    first = [p.id for p in TsvCorpus(path, "en", "es")]
    again = [p.id for p in TsvCorpus(str(path), "en", "es")]
    assert first == again == [f"s.{i}" for i in range(2, 52)]


N_LINES = 200_000


def _big_corpus(kind: str, tmp_path: Path):
    """A 200k-line corpus whose LAST line is not UTF-8: reading it all up front would raise at once."""
    bad = b"\xff\xfe broken\n"
    if kind == "tsv":
        path = write(tmp_path / "big.tsv", b"source\ttarget\n"
                     + b"".join(b"s%d\tt%d\n" % (i, i) for i in range(N_LINES)) + b"s\t" + bad)
        return TsvCorpus(path, "en", "es"), [path]
    if kind == "jsonl":
        path = write(tmp_path / "big.jsonl", b"".join(b'{"source": "s%d", "target": "t%d"}\n' % (i, i)
                                                      for i in range(N_LINES)) + bad)
        return JsonlCorpus(path, "en", "es"), [path]
    src = write(tmp_path / "big.en", b"".join(b"s%d\n" % i for i in range(N_LINES)) + b"s\n")
    tgt = write(tmp_path / "big.es", b"".join(b"t%d\n" % i for i in range(N_LINES)) + bad)
    return MosesCorpus(tmp_path / "big", "en", "es"), [src, tgt]


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "moses"])
def test_iteration_streams_the_file(kind, tmp_path, monkeypatch):
    corpus, paths = _big_corpus(kind, tmp_path)
    handles = []
    real_open = Path.open

    def spying_open(self, *args, **kwargs):
        handle = real_open(self, *args, **kwargs)
        handles.append(handle)
        return handle

    monkeypatch.setattr(Path, "open", spying_open)
    pairs = corpus.iter_pairs()
    assert isinstance(pairs, Iterator)
    first = next(pairs)
    assert (first.source, first.target) == ("s0", "t0")
    # Every file was opened, and each was read only a little way in (not read or decoded whole).
    assert sorted(h.name for h in handles) == sorted(str(p) for p in paths)
    for handle, path in zip(handles, paths, strict=True):
        assert handle.tell() < path.stat().st_size // 100
    # The bad last line is still found once the iteration gets there.
    with pytest.raises(CorpusError) as info:
        for _ in pairs:
            pass
    bad_line = N_LINES + 2 if kind == "tsv" else N_LINES + 1  # the TSV has a header line too
    assert (info.value.path, info.value.line) == (paths[-1], bad_line)
    assert "not valid UTF-8" in str(info.value)


def test_provenance_hashes_the_file_lazily(tmp_path, monkeypatch):
    content = "source\ttarget\nа\tб\n".encode()
    path = write(tmp_path / "p.tsv", content)
    corpus = TsvCorpus(path, "ru", "en")
    calls = []
    real_sha256 = hashlib.sha256
    monkeypatch.setattr(hashlib, "sha256", lambda *a: calls.append(1) or real_sha256(*a))
    list(corpus)
    assert calls == []  # iterating hashes nothing
    info = corpus.provenance()
    assert calls
    assert info["path"] == str(path)
    assert info["size_bytes"] == len(content)
    assert info["sha256"] == real_sha256(content).hexdigest()
    assert (info["source"], info["src_lang"], info["tgt_lang"]) == ("tsv", "ru", "en")
    json.dumps(info)  # provenance is written into result files


def test_moses_provenance_covers_both_files(tmp_path):
    write(tmp_path / "m.en", "a\n")
    write(tmp_path / "m.de", "bb\n")
    info = MosesCorpus(tmp_path / "m", "en", "de").provenance()
    assert [(f["path"], f["size_bytes"]) for f in info["files"]] == [(str(tmp_path / "m.en"), 2),
                                                                      (str(tmp_path / "m.de"), 3)]
    assert info["files"][1]["sha256"] == hashlib.sha256(b"bb\n").hexdigest()


# -- bad input: one test per kind ------------------------------------------------------------------------


@pytest.mark.parametrize("longer", ["en", "es"])
def test_moses_misaligned_line_counts(tmp_path, longer):
    write(tmp_path / "mis.en", "a\nb\nc\n" if longer == "en" else "a\nb\n")
    write(tmp_path / "mis.es", "x\ny\nz\n" if longer == "es" else "x\ny\n")
    err = error_of(MosesCorpus(tmp_path / "mis", "en", "es"))
    shorter = "es" if longer == "en" else "en"
    assert err.path == tmp_path / f"mis.{longer}" and err.line == 3
    assert str(err).startswith(f"{tmp_path / f'mis.{longer}'}:3: ")
    assert f"mis.{shorter} ran out after line 2" in str(err)
    assert "misaligned" in str(err)


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "moses"])
def test_empty_side_is_rejected(tmp_path, kind):
    if kind == "tsv":
        path = write(tmp_path / "e.tsv", "source\ttarget\nok\tbien\nfine\t   \n")
        corpus, field, side, line = TsvCorpus(path, "en", "es"), "target", "target", 3
    elif kind == "jsonl":
        path = write(tmp_path / "e.jsonl", '{"src": "ok", "tgt": "b"}\n{"src": " \\n ", "tgt": "b"}\n')
        corpus = JsonlCorpus(path, "en", "es", source_field="src", target_field="tgt")
        field, side, line = "src", "source", 2
    else:
        write(tmp_path / "e.en", "one\ntwo\nthree\n")
        path = write(tmp_path / "e.es", "uno\n\ntres\n")
        corpus, field, side, line = MosesCorpus(tmp_path / "e", "en", "es"), "target", "target", 2
    message = str(error_of(corpus))
    assert message.startswith(f"{path}:{line} (field {field!r}): ")
    assert f"empty {side} text" in message


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "moses"])
def test_undecodable_bytes_report_the_line(tmp_path, kind):
    bad_line = "caf\u00e9".encode("latin-1") + b"\n"  # Latin-1 é: not UTF-8
    if kind == "tsv":
        path = write(tmp_path / "u.tsv", b"source\ttarget\nx\ty\ncoffee\t" + bad_line)
        corpus, line = TsvCorpus(path, "en", "fr"), 3
    elif kind == "jsonl":
        path = write(tmp_path / "u.jsonl", b'{"source": "x", "target": "y"}\n\n{"source": "' + bad_line)
        corpus, line = JsonlCorpus(path, "en", "fr"), 3
    else:
        write(tmp_path / "u.en", "a\nb\nc\nd\n")
        path = write(tmp_path / "u.fr", b"a\nb\nc\n" + bad_line)
        corpus, line = MosesCorpus(tmp_path / "u", "en", "fr"), 4
    err = error_of(corpus)
    assert str(err).startswith(f"{path}:{line}: ")
    assert "not valid UTF-8" in str(err) and "e9" in str(err)


def test_duplicate_ids_in_tsv_name_both_lines(tmp_path):
    path = write(tmp_path / "d.tsv", "id\tsource\ttarget\na\t1\tuno\nb\t2\tdos\na\t3\ttres\n")
    message = str(error_of(TsvCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:4: ")
    assert "duplicate id 'a'" in message and "line 2" in message


def test_duplicate_ids_in_jsonl_name_both_lines(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"id": 1, "source": "a", "target": "b"}\n'
                                       '{"id": "1", "source": "c", "target": "d"}\n')
    message = str(error_of(JsonlCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:2: ")
    assert "duplicate id '1'" in message and "line 1" in message


def test_tsv_header_missing_column(tmp_path):
    path = write(tmp_path / "h.tsv", "id\tsrc\ttarget\n1\ta\tb\n")
    message = str(error_of(TsvCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:1 (field 'source'): ")
    assert "header has no 'source' column" in message and "id, src, target" in message


def test_tsv_row_with_wrong_column_count_under_header(tmp_path):
    path = write(tmp_path / "w.tsv", "source\ttarget\na\tb\nc\td\tstray tab\n")
    message = str(error_of(TsvCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:3: ")
    assert "row has 3 tab-separated columns but the header has 2" in message


def test_tsv_without_header_wrong_column_count(tmp_path):
    path = write(tmp_path / "n.tsv", "a\tb\nonly one column\n")
    message = str(error_of(TsvCorpus(path, "en", "es", header=False)))
    assert message.startswith(f"{path}:2: ")
    assert "expected 2 tab-separated columns" in message and "found 1" in message


def test_tsv_without_header_mixed_widths(tmp_path):
    path = write(tmp_path / "m.tsv", "a\tb\nid\tc\td\n")
    message = str(error_of(TsvCorpus(path, "en", "es", header=False)))
    assert message.startswith(f"{path}:2: ") and "earlier rows have 2" in message


def test_tsv_empty_file_with_header_expected(tmp_path):
    path = write(tmp_path / "empty.tsv", b"")
    message = str(error_of(TsvCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:1: ") and "expected a header line" in message


def test_jsonl_object_missing_key(tmp_path):
    path = write(tmp_path / "k.jsonl", '{"source": "a", "target": "b"}\n{"source": "c", "tgt": "d"}\n')
    message = str(error_of(JsonlCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:2 (field 'target'): ")
    assert "no 'target' key" in message and "source, tgt" in message


def test_jsonl_invalid_json(tmp_path):
    path = write(tmp_path / "j.jsonl", '{"source": "a", "target": "b"}\n{"source": "c", "target": }\n')
    message = str(error_of(JsonlCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:2: ") and "invalid JSON" in message and "column" in message


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path / "l.jsonl", '["a", "b"]\n')
    message = str(error_of(JsonlCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:1: ") and "expected a JSON object, found list" in message


def test_jsonl_non_string_text(tmp_path):
    path = write(tmp_path / "t.jsonl", '{"source": "a", "target": null}\n')
    message = str(error_of(JsonlCorpus(path, "en", "es")))
    assert message.startswith(f"{path}:1 (field 'target'): ") and "must be a string" in message


@pytest.mark.parametrize("kind", ["tsv", "jsonl", "moses"])
def test_missing_file(tmp_path, kind):
    if kind == "tsv":
        missing, build = tmp_path / "nope.tsv", lambda: TsvCorpus(tmp_path / "nope.tsv", "en", "es")
    elif kind == "jsonl":
        missing, build = tmp_path / "nope.jsonl", lambda: JsonlCorpus(tmp_path / "nope.jsonl", "en", "es")
    else:
        write(tmp_path / "half.en", "a\n")  # the source side exists, the target side does not
        missing, build = tmp_path / "half.es", lambda: MosesCorpus(tmp_path / "half", "en", "es")
    with pytest.raises(CorpusError) as info:
        build()
    assert str(info.value) == f"{missing}: file does not exist"


def test_file_removed_after_construction(tmp_path):
    path = write(tmp_path / "gone.jsonl", '{"source": "a", "target": "b"}\n')
    corpus = JsonlCorpus(path, "en", "es")
    path.unlink()
    assert str(error_of(corpus)) == f"{path}: file does not exist"


def test_directory_instead_of_file(tmp_path):
    (tmp_path / "dir.tsv").mkdir()
    with pytest.raises(CorpusError, match="not a regular file"):
        TsvCorpus(tmp_path / "dir.tsv", "en", "es")


def test_moses_same_language_twice(tmp_path):
    write(tmp_path / "x.en", "a\n")
    with pytest.raises(CorpusError, match="both 'en'"):
        MosesCorpus(tmp_path / "x", "en", "en")


def test_fifo_is_not_a_regular_file(tmp_path):
    """A named pipe gets its own message (and is never opened: that would block until a writer comes)."""
    import os

    fifo = tmp_path / "pipe.tsv"
    os.mkfifo(fifo)
    with pytest.raises(CorpusError) as info:
        TsvCorpus(fifo, "en", "es")
    assert str(info.value) == f"{fifo}: is not a regular file (it is a named pipe (FIFO))"
    from regurg_bench.corpora.lines import read_lines

    with pytest.raises(CorpusError, match=r"named pipe \(FIFO\)"):
        next(read_lines(fifo))


def test_duplicate_column_check_is_linear(tmp_path):
    """40,000 header columns (one repeated): the check used list.count per column (~1 minute), now a Counter."""
    columns = [f"c{i}" for i in range(40_000)] + ["source", "target", "c7"]
    path = write(tmp_path / "wide.tsv", "\t".join(columns) + "\n")
    with pytest.raises(CorpusError) as info:
        list(TsvCorpus(path, "en", "es").iter_pairs())
    assert str(info.value) == f"{path}:1: header names column(s) 'c7' more than once"


@pytest.mark.parametrize(("kind", "char"), [("tsv", "\x00"), ("tsv", "\x1b"), ("jsonl", "\x00"), ("jsonl", "\x7f"),
                                            ("moses", "\x01")])
def test_control_characters_are_errors(tmp_path, kind, char):
    """Raw NUL, ESC, DEL ... in corpus text name file:line:field instead of being kept silently."""
    if kind == "tsv":
        path = write(tmp_path / "c.tsv", f"source\ttarget\nfine\tfine\nbad{char}text\tok\n")
        corpus, where, field = TsvCorpus(path, "en", "es"), f"{path}:3", "source"
    elif kind == "jsonl":
        path = write(tmp_path / "c.jsonl", json.dumps({"source": "a", "target": f"b{char}"}) + "\n")
        corpus, where, field = JsonlCorpus(path, "en", "es"), f"{path}:1", "target"
    else:
        write(tmp_path / "c.en", "a\nb\n")
        path = write(tmp_path / "c.es", f"a\nb{char}\n")
        corpus, where, field = MosesCorpus(tmp_path / "c", "en", "es"), f"{tmp_path / 'c.es'}:2", "target"
    message = str(error_of(corpus.iter_pairs()))
    assert message.startswith(f"{where} (field {field!r}): ") and f"U+{ord(char):04X}" in message


def test_tabs_in_jsonl_text_are_whitespace_not_errors(tmp_path):
    path = write(tmp_path / "t.jsonl", json.dumps({"source": "a\tb\r\nc", "target": "d"}) + "\n")
    assert triples(JsonlCorpus(path, "en", "es").iter_pairs()) == [("t.1", "a b c", "d")]
