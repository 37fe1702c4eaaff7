"""``regurg-bench train``: its options are TrainConfig's fields, with TrainConfig's defaults."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields

from typer.testing import CliRunner

from regurg_bench.cli import app
from regurg_bench.training.commands import DERIVED, RENAMED, train_command
from regurg_bench.training.config import TrainConfig


def _cli_parameters() -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(train_command).parameters)


def test_every_train_config_field_has_one_cli_option_and_back():
    params = _cli_parameters()
    as_fields = [RENAMED.get(name, name) for name in params]
    field_names = [f.name for f in fields(TrainConfig)]
    assert sorted(set(field_names) - set(as_fields)) == [], "TrainConfig fields without a CLI option"
    assert sorted(set(as_fields) - set(field_names)) == [], "CLI options that are no TrainConfig field"
    assert len(as_fields) == len(set(as_fields)), "two CLI options for one field"


def test_cli_defaults_are_train_config_defaults():
    params = _cli_parameters()
    for f in fields(TrainConfig):
        name = next(n for n in params if RENAMED.get(n, n) == f.name)
        default = params[name].default
        if f.default is MISSING:
            assert default is inspect.Parameter.empty, f.name
        elif f.name in DERIVED:
            assert default is None, f.name
        else:
            assert default == f.default, f"--{name}: {default!r} != TrainConfig.{f.name} = {f.default!r}"


def test_bad_values_name_the_cli_option(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--split", "x.jsonl", "--out", str(tmp_path / "o"), "--threads", "0"])
    assert result.exit_code == 2 and "--threads: Input should be greater than 0" in result.output
    result = runner.invoke(app, ["train", "--split", "x.jsonl", "--out", str(tmp_path / "o"), "--method", "half"])
    assert result.exit_code == 2 and "--method: Input should be 'full' or 'lora'" in result.output
