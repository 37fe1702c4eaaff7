"""The `regurg-bench` CLI: help that teaches, corpus list/stats/export round trips, clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from regurg_bench.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_help_lists_commands_and_an_example():
    result = invoke("--help")
    assert result.exit_code == 0
    for word in ("corpus", "eval", "lm_eval --tasks regurg_mt"):
        assert word in result.output
    eval_help = invoke("eval", "--help")
    assert "--model_args" in eval_help.output and "Example" in eval_help.output
    corpus_help = invoke("corpus", "--help")
    assert "bible:en-es" in corpus_help.output and "moses:PREFIX" in corpus_help.output


def test_corpus_list_shows_sources_and_embedded_split_sizes():
    result = invoke("corpus", "list")
    assert result.exit_code == 0, result.output
    for word in ("bible", "tsv", "jsonl", "moses", "hf", "en-es", "fr-en"):
        assert word in result.output


def _stats(*args: str) -> dict:
    result = invoke("corpus", "stats", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.parametrize("fmt,name", [("tsv", "test.tsv"), ("jsonl", "test.jsonl"), ("moses", "test")])
def test_export_then_stats_round_trips_the_fingerprint(tmp_path, fmt, name):
    original = _stats("bible:en-fr")
    out = tmp_path / name
    result = invoke("corpus", "export", "bible:en-fr", str(out), "--format", fmt)
    assert result.exit_code == 0, result.output
    assert f"wrote {original['pairs']} pairs" in result.output
    spec = f"moses:{out}" if fmt == "moses" else str(out)
    again = _stats(spec, "-s", "en", "-t", "fr")
    assert again["pairs"] == original["pairs"]
    assert again["target_words"] == original["target_words"]
    if fmt != "moses":  # Moses text has no ids, so its ids (and fingerprint) differ by design
        assert again["fingerprint"] == original["fingerprint"]


def test_bad_corpus_is_a_clean_error_naming_file_and_line(tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("id\tsource\ttarget\na\tHello\tHola\nb\t\tAdiós\n", encoding="utf-8")
    result = runner.invoke(app, ["corpus", "stats", str(bad), "-s", "en", "-t", "es"])
    assert result.exit_code == 2
    assert "bad.tsv:3" in result.output and "source" in result.output


def test_unknown_format_and_missing_languages_are_clean_errors(tmp_path):
    result = runner.invoke(app, ["corpus", "stats", str(tmp_path / "x.csv"), "-s", "en", "-t", "es"])
    assert result.exit_code == 2 and "cannot tell the corpus format" in result.output
    result = runner.invoke(app, ["corpus", "stats", str(tmp_path / "x.tsv")])
    assert result.exit_code == 2 and "src_lang" in result.output


def test_no_header_option_reads_a_headerless_tsv(tmp_path):
    """Many parallel corpora ship without a header line: `--no-header` (the API's header=False)."""
    path = tmp_path / "plain.tsv"
    path.write_text("Hello\tHola\nGood night\tBuenas noches\n", encoding="utf-8")
    assert _stats(str(path), "-s", "en", "-t", "es", "--no-header")["pairs"] == 2
    without = runner.invoke(app, ["corpus", "stats", str(path), "-s", "en", "-t", "es"])
    assert without.exit_code == 2 and "header has no 'source' column" in without.output
    out = tmp_path / "out.jsonl"
    assert invoke("corpus", "export", str(path), str(out), "-s", "en", "-t", "es", "--no-header").exit_code == 0
    assert [json.loads(line)["target"] for line in out.read_text(encoding="utf-8").splitlines()] == [
        "Hola", "Buenas noches"]
    # the real problem of a bad headerless file is reached and named
    path.write_text("Hello\tHola\nonly one column\n", encoding="utf-8")
    bad = runner.invoke(app, ["corpus", "stats", str(path), "-s", "en", "-t", "es", "--no-header"])
    assert bad.exit_code == 2 and f"error: {path}:2: expected 2 tab-separated columns" in bad.output
    jsonl = runner.invoke(app, ["corpus", "stats", str(out), "-s", "en", "-t", "es", "--no-header"])
    assert jsonl.exit_code == 2 and "--no-header applies to TSV corpora only" in jsonl.output


def test_user_text_is_never_rich_markup(tmp_path):
    """Brackets in a header, a path or a title are shown as written and never crash the CLI."""
    folder = tmp_path / "v[bold]2[/red]"  # a folder "v[bold]2[" holding "red]"
    folder.mkdir(parents=True)
    path = folder / "c[red].tsv"
    path.write_text("id\tsource\ttarget [/red]\na\tHello\tHola\n", encoding="utf-8")
    result = runner.invoke(app, ["corpus", "stats", str(path), "-s", "en", "-t", "es"])
    assert result.exit_code == 2, result.output
    assert f"error: {path}:1 (field 'target'): header has no 'target' column" in result.output
    good = folder / "ok[bold].tsv"
    good.write_text("id\tsource\ttarget\na\tHello\tHola\n", encoding="utf-8")
    result = runner.invoke(app, ["corpus", "stats", str(good), "-s", "en", "-t", "es"])
    assert result.exit_code == 0, result.output
    # the table title, as written (markup would eat "[bold]" and "[/red]"); rich may wrap it, so ignore whitespace
    assert f"{good}(en->es)" in "".join(result.output.split())


def test_errors_are_one_unwrapped_line(tmp_path):
    """A long path with its line number stays on one line (rich wrapped at 80 columns, splitting file:line)."""
    folder = tmp_path / ("a-rather-long-folder-name-" * 4)
    folder.mkdir()
    path = folder / "corpus-with-a-long-name.tsv"
    path.write_text("id\tsource\ttarget\na\tHello\t\n", encoding="utf-8")
    result = runner.invoke(app, ["corpus", "stats", str(path), "-s", "en", "-t", "es"])
    assert result.exit_code == 2
    assert f"error: {path}:2 (field 'target'): empty target text\n" in result.output
