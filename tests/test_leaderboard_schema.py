"""One score type in two validation modes: strict in entries, lenient in results.json."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from regurg_bench.leaderboard.schema import RunScore, Score

ROW = {"score": 12.5, "ci_low": 11.0, "ci_high": 14.0, "per_seed": [12.0, 13.0]}


def test_a_run_score_is_a_score_with_the_same_fields_and_bounds():
    assert issubclass(RunScore, Score)
    assert set(RunScore.model_fields) - set(Score.model_fields) == {"lm_eval_reported"}
    for name, field in Score.model_fields.items():
        assert RunScore.model_fields[name].metadata == field.metadata  # e.g. per_seed's min_length
    with pytest.raises(ValidationError, match="per_seed"):
        RunScore.model_validate(ROW | {"per_seed": []})
    with pytest.raises(ValidationError, match="score"):
        RunScore.model_validate(ROW | {"score": float("nan")})


def test_strict_mode_rejects_unknown_keys_lenient_mode_ignores_them():
    with pytest.raises(ValidationError, match="se"):
        Score.model_validate(ROW | {"se": 0.1})
    with pytest.raises(ValidationError, match="lm_eval_reported"):  # a run's field, never an entry's
        Score.model_validate(ROW | {"lm_eval_reported": [12.0, 13.0]})
    run = RunScore.model_validate(ROW | {"se": 0.1, "lm_eval_reported": [12.0, 13.0]})
    assert run.lm_eval_reported == [12.0, 13.0] and not hasattr(run, "se")


def test_the_strict_form_of_a_run_score_is_the_entry_score():
    run = RunScore.model_validate(ROW | {"lm_eval_reported": [12.0, 13.0]})
    assert type(run.strict()) is Score and run.strict() == Score.model_validate(ROW)
    assert run.strict().model_dump() == ROW
