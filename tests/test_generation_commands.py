"""`regurg-bench generate` (registered on a fresh Typer app, as cli.py's stage hook does)."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from regurg_bench.generation.commands import parse_options, register
from regurg_bench.testing.generators import scripted_translation


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")  # a second command, so typer keeps `generate` as a sub-command
    def noop() -> None:
        pass

    return app


def test_generate_writes_targets_and_resumes_from_the_cache(tmp_path):
    out, cache = tmp_path / "targets.jsonl", tmp_path / "cache"
    args = ["generate", "bible:en-es:train", "-g", "scripted", "-n", "25", "-o", str(out), "--cache", str(cache),
            "-b", "10"]
    result = CliRunner().invoke(_app(), args)
    assert result.exit_code == 0, result.output
    assert "25 pairs: 0 from cache, 25 generated" in result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 25 and rows[0]["id"].startswith("bible.")
    assert rows[0]["target"] == scripted_translation(rows[0]["source"], "en", "es")
    assert rows[0]["status"] == "ok" and rows[0]["generator_signature"].startswith("sha256:")
    again = CliRunner().invoke(_app(), args)
    assert "25 from cache, 0 generated" in again.output


def test_generate_reports_bad_input_cleanly(tmp_path):
    bad = CliRunner().invoke(_app(), ["generate", "bible:en-es:train", "-g", "no-such-kind"])
    assert bad.exit_code == 2 and "unknown generator kind" in bad.output
    unsupported = CliRunner().invoke(_app(), ["generate", "bible:en-fr:train", "-g", "apertium", "-n", "2",
                                              "--cache", str(tmp_path), "-o", str(tmp_path / "x.jsonl")])
    assert unsupported.exit_code == 2 and "Supported directions" in unsupported.output
    assert not (tmp_path / "x.jsonl").exists()


def test_parse_options():
    assert parse_options(["model=/a/b", "max_new_tokens=64", 'engine_kwargs={"enforce_eager": true}']) == {
        "model": "/a/b", "max_new_tokens": 64, "engine_kwargs": {"enforce_eager": True}}
