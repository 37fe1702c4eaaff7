"""The typed results model (regurg_bench/results.py): every committed results.json round-trips through it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from regurg_bench.results import RunClaim, RunEffect, RunResults, RunVerdict

ROOT = Path(__file__).resolve().parents[1]


def _bundled_results() -> dict[str, str]:
    """results.json of every committed evidence bundle (the run an entry was made from), by bundle path."""
    out = {}
    for bundle in sorted(ROOT.glob("leaderboards/**/evidence/*.jsonl.gz")):
        with gzip.open(bundle, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                if row.get("path") == "results.json":
                    out[str(bundle.relative_to(ROOT))] = row["text"]
    return out


def _local_runs() -> dict[str, str]:
    """results.json of the example runs under runs/ (not committed: there when this checkout ran them)."""
    return {str(p.relative_to(ROOT)): p.read_text(encoding="utf-8")
            for p in sorted(ROOT.glob("runs/protocol/*/results.json"))}


COMMITTED = _bundled_results()


def test_there_are_committed_results_to_check():
    assert len(COMMITTED) >= 2  # the current entry's run and the archived protocol-v2 one


@pytest.mark.parametrize("label", sorted(COMMITTED) + sorted(_local_runs()))
def test_results_json_round_trips_byte_for_byte(label):
    """Validated into the model and written back (sorted keys, two-space indent, as the run writes it): the
    same bytes. Every key the protocol writes is a typed field, so none is lost on the way."""
    text = COMMITTED.get(label) or (ROOT / label).read_text(encoding="utf-8")
    data = json.loads(text)
    back = RunResults.model_validate(data).to_data()
    assert back == data
    assert json.dumps(back, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n" == text


def test_claims_and_effects_are_typed():
    res = RunResults.model_validate(json.loads(COMMITTED[sorted(COMMITTED)[0]]))
    assert all(isinstance(c, RunClaim) for c in res.claims)
    verdicts = [v for c in res.claims for v in c.per_metric.values()]
    assert verdicts and all(isinstance(v, RunVerdict) for v in verdicts)
    assert {v.robustness_or_default() for v in verdicts} <= {"robust", "fragile", "inconclusive"}
    task = res.tasks[0]
    assert all(isinstance(e, RunEffect) for per in res.degradation[task].values() for e in per.values())
    assert res.metrics() == res.config["scoring"]["metrics"]


def test_unknown_keys_are_ignored_and_a_recorded_null_is_kept():
    """Lenient: results from newer code still load; a null written by the run stays a null (unlike an entry's
    effect, which leaves absent detectability out so that old entries keep their bytes)."""
    row = {"kind": "difference", "metric": "bleu", "estimate": 1.0, "ci_low": 0.5, "ci_high": 1.5, "status": "ok",
           "level": 0.95, "seeds_needed": None, "new_field": 3}
    effect = RunEffect.model_validate(row)
    assert effect.model_dump(mode="json", exclude_unset=True) == {k: v for k, v in row.items() if k != "new_field"}


def test_an_old_verdict_without_seed_fields_counts_as_fragile():
    v = RunVerdict.model_validate({"kind": "degradation", "metric": "chrf", "estimate": 1.0, "ci_low": 0.5,
                                   "ci_high": 1.5, "status": "ok", "level": 0.95, "verdict": "holds",
                                   "seeds_holding": 2})
    assert v.robustness_or_default() == "fragile" and v.agreeing() == 2
