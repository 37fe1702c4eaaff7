"""``regurg-bench compare RUN_A RUN_B``, the seed-noise tolerance it shares with ``verify``, and the weight
fingerprints a run records. The runs are the session's one tiny protocol run (tests/conftest.py) and copies
of it with edited outputs, verdicts or fingerprints (as a second machine would give them), and the
committed leaderboard entry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regurg_bench.cli import app
from regurg_bench.evaluation.signatures import corpus_score
from regurg_bench.protocol.report import load_samples

runner = CliRunner()
ENTRIES = Path(__file__).resolve().parents[1] / "leaderboards" / "bible-en-es" / "entries"


def _copy(run: Path, dst: Path) -> Path:
    """What compare reads of a run (results.json and the logged outputs), safe to edit."""
    dst.mkdir(parents=True)
    shutil.copy(run / "results.json", dst / "results.json")
    shutil.copytree(run / "evals", dst / "evals")
    return dst


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def _save(run: Path, results: dict) -> None:
    (run / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


def _compare(a: Path, b: Path, tmp_path: Path, *extra: str) -> tuple[int, dict | None, str]:
    out = tmp_path / "compare.json"
    out.unlink(missing_ok=True)
    res = runner.invoke(app, ["compare", str(a), str(b), "--json", str(out), *extra])
    return res.exit_code, json.loads(out.read_text()) if out.is_file() else None, res.output


@pytest.fixture
def run(tiny_protocol_run) -> Path:
    return tiny_protocol_run[1]


def test_the_run_records_the_fingerprints_of_the_weights_it_used(run):
    from regurg_bench.leaderboard.schema import RunResults
    from regurg_bench.protocol.fingerprints import folder_fingerprint

    results = _results(run)
    fp = results["fingerprints"]
    assert fp["base_model"] is None  # scratch:test: every student initialises itself, no shared checkpoint
    assert fp["generators"] == {"scripted": None, "scripted2": None}  # not checkpoints
    assert set(fp["students"]) == set(results["students"])
    for name, s in results["students"].items():
        assert fp["students"][name] == folder_fingerprint(run / s["model_id"]) and fp["students"][name].startswith("sha256:")
    assert RunResults.model_validate(results).fingerprints.students == fp["students"]
    del results["fingerprints"]  # results scored before fingerprints were recorded stay valid
    assert RunResults.model_validate(results).fingerprints is None


def test_a_self_generating_base_model_and_its_generator_have_one_fingerprint(tiny_model_dir, tmp_path):
    """A checkpoint generator is named by the hash its signature records (the teacher of the default is the
    base model: the same string); Apertium and scratch bases have none; a LoRA adapter folder is hashed too."""
    import shutil

    from regurg_bench.generation.teacher_backend import TeacherGenerator
    from regurg_bench.protocol.fingerprints import (
        base_model_fingerprint,
        folder_fingerprint,
        generator_fingerprint,
    )

    base = base_model_fingerprint(str(tiny_model_dir))
    assert base is not None and base.startswith("sha256:")
    assert generator_fingerprint(TeacherGenerator(tiny_model_dir).signature().to_dict()) == base
    assert generator_fingerprint({"kind": "apertium", "model": "eng-spa", "revision": "3.9.1"}) is None
    assert base_model_fingerprint("scratch:tiny") is None and folder_fingerprint(tmp_path / "missing") is None
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    weights = next(tiny_model_dir.glob("*.safetensors"))
    shutil.copy(weights, adapter / "adapter_model.safetensors")
    first = folder_fingerprint(adapter)
    (adapter / "adapter_model.safetensors").write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert first and first.startswith("sha256:") and folder_fingerprint(adapter) != first


def test_compare_a_run_with_itself(run, tmp_path):
    code, result, output = _compare(run, run, tmp_path)
    assert code == 0, output
    assert result["same_config"] and result["summary"]["robust_disagreements"] == 0
    assert result["scores"] and all(r["difference"] == 0 and r["within_noise"] is True for r in result["scores"])
    assert all(r["difference_in_half_widths"] == 0 for r in result["scores"])
    shares = result["identical_outputs"][result["tasks"][0]]
    assert set(shares) == set(_results(run)["conditions"])
    assert all(c["share"] == 1.0 and set(c["per_seed"].values()) == {1.0} for c in shares.values())
    assert result["verdicts"] and all(v["agree"] and not v["breaking"] for v in result["verdicts"])
    recorded = {(c["claim"], c["condition"], m): e.get("robustness", "fragile")  # not recorded: fragile
                for c in _results(run)["claims"] for m, e in c["per_metric"].items()}
    assert all(v["robustness_a"] == recorded[(v["claim"], v["condition"], v["metric"])] for v in result["verdicts"])
    assert [s["status"] for s in result["divergence"]["stages"]] == ["identical"] * 4
    assert result["divergence"]["first"] is None and "first divergence: none recorded" in output


def _edit_outputs(run: Path, student: str, docs: list[int]) -> None:
    """Replace ``student``'s outputs of ``docs`` by their references, and rescore that student's seed as the
    protocol does (its corpus score per metric; the condition's score is the mean over seeds)."""
    results = _results(run)
    task = results["tasks"][0]
    s = results["students"][student]
    path = run / s["samples"][task]
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
    for row in rows:
        if row["doc_id"] in docs:
            row["filtered_resps"] = [row["target"]]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    _, hyps, refs = load_samples(run, s["samples"][task])
    index = sorted(results["conditions"][s["condition"]]["seeds"]).index(s["seed"])
    for metric, row in results["scores"][task][s["condition"]].items():
        row["per_seed"][index] = corpus_score(metric, hyps, refs)
        row["score"] = sum(row["per_seed"]) / len(row["per_seed"])
    _save(run, results)


def _claim(results: dict, claim: str, condition: str) -> dict:
    return next(c for c in results["claims"] if c["claim"] == claim and c["condition"] == condition)


def _without_robustness(folder: Path) -> None:
    """As results scored before robustness was recorded (every verdict counts as fragile)."""
    results = _results(folder)
    for c in results["claims"]:
        for e in c["per_metric"].values():
            e.pop("robustness", None)
    _save(folder, results)


def test_edited_outputs_move_scores_and_identical_shares_and_the_exit_follows_robustness(run, tmp_path):
    a, b = _copy(run, tmp_path / "a"), _copy(run, tmp_path / "b")
    for folder in (a, b):
        _without_robustness(folder)
    _edit_outputs(b, "real-s0", [0, 1])
    code, result, output = _compare(a, b, tmp_path)
    assert code == 0, output  # every verdict is fragile: nothing another machine must reproduce
    task = result["tasks"][0]
    real = result["identical_outputs"][task]["real"]
    assert real["per_seed"] == {"0": 0.6, "1": 1.0} and real["share"] == 0.8 and real["identical"] == 8
    assert all(c["share"] == 1.0 for cond, c in result["identical_outputs"][task].items() if cond != "real")
    moved = [r for r in result["scores"] if r["difference"] != 0]
    assert {r["condition"] for r in moved} == {"real"} and {r["metric"] for r in moved} == {"bleu", "chrf", "ter"}
    bleu = next(r for r in moved if r["metric"] == "bleu")
    assert bleu["difference"] > 0 and bleu["difference_in_half_widths"] == pytest.approx(
        bleu["difference"] / bleu["half_width"], abs=1e-3)
    assert bleu["within_noise"] is False and "!" in output  # two perfect sentences: far outside seed noise
    div = result["divergence"]
    assert div["first"] == "outputs" and div["stages"][3]["differing"] == ["real-s0"]
    # the edited run's verdict differs: fragile on both sides -> exit 0; robust on either side -> exit 1
    flipped = _results(b)
    claim = _claim(flipped, "degradation", "regurg_scripted")
    before = claim["per_metric"]["bleu"]["verdict"]
    claim["per_metric"]["bleu"]["verdict"] = after = "contradicted" if before.startswith("holds") else "holds"
    _save(b, flipped)
    code, result, output = _compare(a, b, tmp_path)
    assert code == 0 and result["summary"]["verdicts_agree"] == result["summary"]["verdicts"] - 1, output
    claim["per_metric"]["bleu"]["robustness"] = "robust"
    _save(b, flipped)
    code, result, output = _compare(a, b, tmp_path)
    assert code == 1, output
    [broken] = [v for v in result["verdicts"] if v["breaking"]]
    assert (broken["claim"], broken["condition"], broken["metric"]) == ("degradation", "regurg_scripted", "bleu")
    assert (broken["a"], broken["b"], broken["robustness_a"], broken["robustness_b"]) == (before, after, "fragile",
                                                                                          "robust")
    assert "✗" in output and "exit 1" in output


def test_a_robust_verdict_flipped_in_one_run_exits_1(run, tmp_path):
    a, b = _copy(run, tmp_path / "a"), _copy(run, tmp_path / "b")
    for folder, verdict in ((a, "holds"), (b, "contradicted")):
        results = _results(folder)
        for c in results["claims"]:
            for e in c["per_metric"].values():
                e["robustness"] = "robust"  # a run scored with robustness, every verdict robust
        _claim(results, "degradation", "regurg_scripted")["per_metric"]["chrf"]["verdict"] = verdict
        _save(folder, results)
    code, result, output = _compare(a, b, tmp_path)
    assert code == 1, output
    assert result["summary"]["robust_disagreements"] == 1 and result["exit_code"] == 1
    # identical runs with robust verdicts agree everywhere
    code, _, output = _compare(a, a, tmp_path)
    assert code == 0, output


def test_fingerprints_say_where_two_runs_first_diverged(run, tmp_path):
    b = _copy(run, tmp_path / "b")
    results = _results(b)
    results["fingerprints"]["students"]["m4_unlearn_scripted-s1"] = "sha256:" + "0" * 64
    _save(b, results)
    _, result, output = _compare(run, b, tmp_path)
    assert result["divergence"]["first"] == "student weights"
    assert result["divergence"]["stages"][2]["differing"] == ["m4_unlearn_scripted-s1"]
    assert "first divergence: student weights (m4_unlearn_scripted-s1)" in output
    results["data"]["split_fingerprints"]["regurg_scripted"] = "f" * 64
    _save(b, results)
    _, result, _ = _compare(run, b, tmp_path)
    assert result["divergence"]["first"] == "generators and generated splits"
    assert result["divergence"]["stages"][1]["differing"] == ["split regurg_scripted"]
    results["fingerprints"]["base_model"] = "sha256:" + "1" * 64
    _save(b, results)
    _, result, _ = _compare(run, b, tmp_path)
    assert result["divergence"]["first"] == "base model"
    del results["fingerprints"]  # a run scored before fingerprints were recorded
    _save(b, results)
    code, result, _ = _compare(run, b, tmp_path)
    stages = {s["stage"]: s["status"] for s in result["divergence"]["stages"]}
    assert code == 0 and stages["base model"] == stages["student weights"] == "not recorded"
    assert result["divergence"]["first"] == "generators and generated splits"
    assert result["divergence"]["not_recorded_before_first"] == ["base model"]


def test_bad_input_exits_2_naming_the_file_and_field(run, tmp_path):
    code, result, output = _compare(tmp_path / "nope", run, tmp_path)
    assert code == 2 and result is None and f"{tmp_path / 'nope'}: no such run folder" in output
    (tmp_path / "empty").mkdir()
    code, _, output = _compare(run, tmp_path / "empty", tmp_path)
    assert code == 2 and "empty: no results.json" in output
    broken = _copy(run, tmp_path / "broken")
    results = _results(broken)
    del results["scores"]
    _save(broken, results)
    code, _, output = _compare(run, broken, tmp_path)
    assert code == 2 and "field 'scores': required field is missing" in output
    (tmp_path / "other.json").write_text('{"schema": "something/else"}')
    code, _, output = _compare(run, tmp_path / "other.json", tmp_path)
    assert code == 2 and "field 'schema' is 'something/else'" in output
    # another config: refused, or compared with a warning
    other = _copy(run, tmp_path / "other")
    results = _results(other)
    results["config_hash"] = "sha256:" + "2" * 64
    _save(other, results)
    code, _, output = _compare(run, other, tmp_path)
    assert code == 2 and "field 'config_hash' differs" in output and "--allow-config-change" in output
    code, result, output = _compare(run, other, tmp_path, "--allow-config-change")
    assert code == 0 and not result["same_config"] and "WARNING" in output


def test_a_leaderboard_entry_with_and_without_its_evidence(tmp_path):
    [entry] = sorted(ENTRIES.glob("*.json"))
    code, result, output = _compare(entry, entry, tmp_path)
    assert code == 0, output
    assert result["a"]["kind"] == "entry" and result["a"]["outputs"] and result["a"]["claims"]
    assert all(c["share"] == 1.0 for per in result["identical_outputs"].values() for c in per.values())
    assert result["verdicts"] and all(v["agree"] for v in result["verdicts"])
    # the committed entry records the weights' fingerprints: compared with itself, the base model is the same
    assert result["divergence"]["stages"][0]["status"] == "identical"
    lone = tmp_path / "board" / "entries" / entry.name
    lone.parent.mkdir(parents=True)
    shutil.copy(entry, lone)  # without its evidence bundle: scores only
    code, result, output = _compare(lone, entry, tmp_path)
    assert code == 0, output
    assert result["identical_outputs"] is None and result["verdicts"] is None
    assert any("has no logged outputs" in n for n in result["notes"]) and "no outputs" in output
    assert result["scores"] and all(r["difference"] == 0 for r in result["scores"])
