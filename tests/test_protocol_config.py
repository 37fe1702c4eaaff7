"""`regurg-bench run` config checks: every error is reported before any work starts (``--dry-run`` too),
naming its key; ``train:`` overrides go through the same typed model as `regurg-bench train`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from regurg_bench.builders.config import ConfigError
from regurg_bench.cli import app
from regurg_bench.protocol.config import check_config, load_protocol_config
from regurg_bench.protocol.run import run_protocol
from regurg_bench.scoring.bootstrap import MAX_RESAMPLES

TINY = yaml.safe_load((Path(__file__).parent / "data" / "tiny_protocol.yaml").read_text(encoding="utf-8"))
runner = CliRunner()


def _config(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(yaml.safe_dump(TINY))
    change(data)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _dry_run_error(tmp_path: Path, change) -> str:
    path = _config(tmp_path, change)
    result = runner.invoke(app, ["run", str(path), "--dry-run", "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "run").exists(), "no work may start on a bad config"
    assert "Traceback" not in result.output
    return result.output


def test_the_tiny_config_passes():
    check_config(load_protocol_config(Path(__file__).parent / "data" / "tiny_protocol.yaml"))


@pytest.mark.parametrize(("change", "needle"), [
    (lambda d: d["train"].update(max_steps="three"), "train.max_steps: Input should be a valid integer"),
    (lambda d: d["train"].update(batch_size=True), "train.batch_size: Input should be a valid integer"),
    (lambda d: d["train"].update(max_steps=0), "train.max_steps: Input should be greater than 0"),
    (lambda d: d["train"].update(base_model="scratch:huge"), "train.base_model: unknown from-scratch preset 'huge'"),
    (lambda d: d["train"].update(base_model="no-such-model"), "train.base_model: unknown base model 'no-such-model'"),
    (lambda d: d["build"].update(corpus="missing/corpus.tsv", src_lang="en", tgt_lang="es"),
     "build.corpus: 'missing/corpus.tsv' does not resolve: missing/corpus.tsv: file does not exist"),
    (lambda d: d["build"].update(corpus="bible:xx-yy:train"), "build.corpus: 'bible:xx-yy:train' does not resolve"),
    (lambda d: d["build"]["generators"].update(bad={"kind": "nope"}), "build.generators.bad.kind: unknown generator "
                                                                      "kind 'nope'"),
    (lambda d: d["build"]["generators"]["scripted2"].update(options={"colour": "red"}),
     "build.generators.scripted2.options.colour: generator 'scripted' does not take this option"),
    (lambda d: d["build"]["generators"]["scripted2"].update(options={"delay": "slow"}),
     "build.generators.scripted2.options.delay: Input should be a valid number"),
    (lambda d: d["build"]["generators"].update(t={"kind": "teacher", "options": {"checkpoint": "scratch:huge"}}),
     "build.generators.t.options.checkpoint: unknown from-scratch preset 'huge'"),
    (lambda d: d["scoring"].update(resamples=1_000_000), f"scoring.resamples: Input should be less than or equal "
                                                         f"to {MAX_RESAMPLES}"),
])
def test_config_errors_before_any_work(tmp_path, change, needle):
    output = _dry_run_error(tmp_path, change)
    assert needle in output, output


def test_run_protocol_checks_the_config_first(tmp_path):
    cfg = load_protocol_config(_config(tmp_path, lambda d: d["train"].update(base_model="scratch:huge")))
    with pytest.raises(ConfigError, match="train.base_model"):
        run_protocol(cfg, tmp_path / "run", say=lambda _m: None)
    assert not (tmp_path / "run").exists()


def test_train_command_uses_the_same_typed_model(tmp_path):
    result = runner.invoke(app, ["train", "--split", "x.jsonl", "--out", str(tmp_path / "o"), "--max-steps", "0"])
    assert result.exit_code == 2 and "--max-steps: Input should be greater than 0" in result.output


def test_every_preset_passes_the_checks():
    """The paper preset's hf corpus takes a `name` option (the dataset config): it used to collide with
    get_corpus's own `name` argument, so the paper run would have failed at its build step."""
    from regurg_bench.protocol.config import preset_names, preset_path

    for name in preset_names():
        check_config(load_protocol_config(preset_path(name)), name)
