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
