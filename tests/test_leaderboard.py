"""``regurg-bench submit`` and ``leaderboard build|validate``: a tiny real protocol run on the full published
test set (the TINY config of tests/test_protocol.py, one seed, no ladder, mixes or fractions) is submitted
with its evidence, rendered and re-checked; each kind of bad submission is refused with its own message
(a forged entry, a reference-copying run, a subset run and a 5-sentence run each by `submit` and by
`leaderboard validate`, naming the rule); the rendered files are deterministic; nothing in a submission
is executed. Forged variants are derived from copies of the one run, every file recomputed as a forger
would."""

from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from regurg_bench.cli import app
from regurg_bench.leaderboard import evidence, render, rules, schema, verify
from regurg_bench.leaderboard.provenance import known_task_versions
from regurg_bench.leaderboard.schema import ENTRY_SCHEMA, LeaderboardEntry, SubmissionError
from regurg_bench.leaderboard.submit import (
    finalize_entry,
    load_run,
    make_entry,
    read_entry,
    submit,
    validate_leaderboard,
)
from regurg_bench.protocol.config import load_protocol_config
from regurg_bench.protocol.run import run_protocol
from regurg_bench.testing.forgery import forge, read_rows, rescore

#: the tiny protocol of tests/test_protocol.py on the full published test set (the leaderboard's rule),
#: with one seed and without its size ladder, mixes and fractions (fewer students to evaluate)
TINY = yaml.safe_load((Path(__file__).parent / "data" / "tiny_protocol.yaml").read_text(encoding="utf-8"))
TINY["build"].update(ladder=None, mixes=None, fractions_of_real=[])
TINY["seeds"] = [0]
TINY["eval"].update(limit=None, batch_size=64)
TASK = "regurg_mt_en-es"
N_TEST = 1004  # the published en-es test set
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """One real protocol run (scripted generators, the `scratch:test` student, all 1,004 test sentences)."""
    tmp = tmp_path_factory.mktemp("leaderboard-run")
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(TINY), encoding="utf-8")
    out = tmp / "run"
    run_protocol(load_protocol_config(tmp / "tiny.yaml"), out, say=lambda _msg: None)
    return out


@pytest.fixture
def run(tiny_run, tmp_path) -> Path:
    """A private copy of what a submission reads (results.json and the lm-eval outputs), safe to tamper with."""
    dst = tmp_path / "run"
    dst.mkdir()
    shutil.copy(tiny_run / "results.json", dst / "results.json")
    shutil.copytree(tiny_run / "evals", dst / "evals")
    return dst


def _edit(run: Path, change) -> None:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    change(results)
    (run / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


def _config_hash(config: dict) -> str:
    from regurg_bench.protocol.config import _validate

    return _validate(config, "config").config_hash()


def _rows(path: Path) -> list[dict]:
    return read_rows(path)


def _forge(run: Path, change_rows) -> None:
    """What a forger does (:mod:`regurg_bench.testing.forgery`): ``change_rows(condition, rows) -> rows``."""
    forge(run, lambda condition, _seed, rows: change_rows(condition, rows))


def _recompute(run: Path) -> None:
    rescore(run)


def _forged_submit(run: Path, root: Path, model: str) -> Path:
    """What a patched copy of `submit` (its rules switched off) writes onto a board."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(rules, "REFUSED_SHARE", 2.0)
        m.setattr(rules, "NEAR_COPY_REFUSED", 2.0)
        m.setattr(rules, "ABOVE_REAL_REFUSED_Z", float("inf"))
        m.setattr(verify, "check_full_test_set", lambda *_a, **_k: None)
        return submit(run, "demo", root, model)


def _rejected(run: Path, needle: str, leaderboard: str = "demo", model: str | None = "tiny-model") -> str:
    with pytest.raises(SubmissionError, match=re.escape(needle)) as err:
        make_entry(run, leaderboard, model)
    return str(err.value)


def _samples(run: Path, student: str = "real-s0") -> Path:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    return run / results["students"][student]["samples"][TASK]


# ------------------------------------------------------------------------------- round trip
def test_submit_build_validate_round_trip(run, tmp_path):
    root = tmp_path / "boards"
    res = runner.invoke(app, ["submit", str(run), "--leaderboard", "demo", "--root", str(root),
                              "--model-name", "tiny-model"])
    assert res.exit_code == 0, res.output
    files = list((root / "demo" / "entries").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("tiny-model-")
    entry = json.loads(files[0].read_text(encoding="utf-8"))
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    assert entry["schema"] == ENTRY_SCHEMA and entry["config_hash"] == results["config_hash"]
    assert entry["base_model"] == "scratch:test" and entry["seeds"] == results["config"]["seeds"] and entry["run_name"] == "tiny"
    assert entry["test_set_fingerprints"][TASK] == results["test_set_fingerprints"][TASK]
    assert entry["flags"] == [] and entry["plausibility"][TASK]["real"]["copied_reference"] < 0.1
    bundle = root / "demo" / "evidence" / f"{entry['evidence']['sha256'].removeprefix('sha256:')}.jsonl.gz"
    assert bundle.is_file() and bundle.stat().st_size < 1024 * 1024
    assert entry["n_test_sentences"] == {TASK: N_TEST} and entry["task_versions"][TASK] == str(results["task_versions"][TASK])
    real = results["scores"][TASK]["real"]["bleu"]
    assert entry["scores"][TASK]["real"]["bleu"] == {k: real[k] for k in ("score", "ci_low", "ci_high", "per_seed")}
    def present(tree):  # an entry leaves out the detectability fields that are absent (null in results.json)
        if not isinstance(tree, dict):
            return tree
        return {k: present(v) for k, v in tree.items()
                if not (v is None and k in ("detectable", "seeds_needed", "seed_share"))}

    assert entry["degradation"][TASK]["regurg_scripted"]["chrf"] == \
        present(results["degradation"][TASK]["regurg_scripted"]["chrf"])
    assert entry["recovery"][TASK]["m1_topk_scripted"] == present(results["recovery"][TASK]["m1_topk_scripted"])
    assert entry["fingerprints"] == results["fingerprints"] and entry["fingerprints"]["students"]  # weights used

    assert runner.invoke(app, ["leaderboard", "validate", "demo", "--root", str(root)]).exit_code == 0
    res = runner.invoke(app, ["leaderboard", "build", "demo", "--root", str(root)])
    assert res.exit_code == 0, res.output
    readme = (root / "demo" / "README.md").read_text(encoding="utf-8")
    page = (root / "demo" / "index.html").read_text(encoding="utf-8")
    shown = f"{real['score']:.2f} [{real['ci_low']:.2f}, {real['ci_high']:.2f}]"
    assert "tiny-model" in readme and shown in readme and "![" in readme
    assert "tiny-model" in page and f'data-sort-value="{real["score"]!r}"' in page
    assert "data:image/png;base64," in page and (root / "demo" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "index.html must load nothing from the network"


def test_entry_has_no_timestamp_and_is_reproducible(run):
    first, second = make_entry(run, "demo", "m"), make_entry(run, "demo", "m")
    assert first.to_json() == second.to_json()
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", first.to_json())
    # every field but the collapse curve, which only a v3 entry (a run with a collapse section) has
    assert set(json.loads(first.to_json())) == set(LeaderboardEntry.model_fields) - {"schema_id", "collapse"} | {
        "schema"}
    assert first.schema_id == ENTRY_SCHEMA == "regurg-bench/leaderboard-entry/v2"


def test_committed_entries_keep_their_bytes_and_ids_without_fingerprints():
    """Entries submitted before the weights' fingerprints were recorded serialise as before: the same bytes
    and the same content-derived id (the optional field is left out when absent, not written as null)."""
    boards = Path(__file__).parent.parent / "leaderboards"
    old = sorted(boards.glob("*/archive/protocol-v2/*.json"))  # submitted before fingerprints existed
    assert old
    for path in old:
        entry = read_entry(path, path.parent.parent.parent.name, recheck=False)  # checks the id against the content
        assert entry.fingerprints is None and entry.to_json() == path.read_text(encoding="utf-8")
    for path in sorted(boards.glob("*/entries/*.json")):  # current entries: fingerprints, and their own bytes
        entry = read_entry(path, path.parent.parent.name, recheck=False)
        assert entry.fingerprints is not None and entry.to_json() == path.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------- rejections
def test_schema_violation_names_the_field(run):
    _edit(run, lambda r: r["scores"][TASK]["real"]["bleu"].update(ci_low="high"))
    _rejected(run, f"results.json: field 'scores.{TASK}.real.bleu.ci_low': Input should be a valid number")


def test_missing_field_is_named(run):
    _edit(run, lambda r: r.pop("scoring"))
    _rejected(run, "results.json: field 'scoring': required field is missing")


def test_wrong_results_schema_version(run):
    _edit(run, lambda r: r.update(schema="regurg-bench/results/v0"))
    _rejected(run, "field 'schema'")


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_rejected(run, token):
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    value = results["scores"][TASK]["real"]["chrf"]["score"]
    text = (run / "results.json").read_text(encoding="utf-8")
    (run / "results.json").write_text(text.replace(f'"score": {value!r}', f'"score": {token}', 1), encoding="utf-8")
    message = _rejected(run, f" is {token}: non-finite numbers (NaN, Infinity) are not allowed")
    assert f"results.json: field 'scores.{TASK}." in message


def test_duplicate_json_keys_rejected(run):
    text = (run / "results.json").read_text(encoding="utf-8").lstrip()
    (run / "results.json").write_text('{"name": "x", ' + text[1:], encoding="utf-8")
    _rejected(run, "duplicate key 'name'")


def test_unknown_task_version(run):
    _edit(run, lambda r: r["task_versions"].update({TASK: 9.9}))
    _rejected(run, f"field 'task_versions.{TASK}': unknown task version '9.9' (known versions of {TASK}: 1.1")


def test_test_set_fingerprint_mismatch(run):
    _edit(run, lambda r: r["test_set_fingerprints"][TASK].update(fingerprint="sha256:" + "0" * 64))
    _rejected(run, f"field 'test_set_fingerprints.{TASK}': test-set fingerprint mismatch")


def test_missing_metric_signature(run):
    _edit(run, lambda r: r["sacrebleu_signatures"].pop("bleu"))
    _rejected(run, "field 'sacrebleu_signatures.bleu' is missing")


def test_other_metric_settings(run):
    _edit(run, lambda r: r["sacrebleu_signatures"].update(bleu=r["sacrebleu_signatures"]["bleu"].replace("13a", "intl")))
    _rejected(run, "field 'sacrebleu_signatures.bleu'")


def test_missing_lm_eval_version(run):
    _edit(run, lambda r: r.pop("lm_eval_version"))
    _rejected(run, "field 'lm_eval_version' is missing")


def test_claims_must_match_lm_evals_own_results_file(run):
    _edit(run, lambda r: r.update(lm_eval_version="0.4.99"))
    _rejected(run, "but results.json field 'lm_eval_version' claims '0.4.99'")


@pytest.mark.parametrize("field, change", [
    (f"scores.{TASK}.real.chrf.score", lambda r: r["scores"][TASK]["real"]["chrf"].update(score=99.0)),
    (f"scores.{TASK}.real.chrf.per_seed[0]", lambda r: r["scores"][TASK]["real"]["chrf"].update(per_seed=[99.0])),
    (f"scores.{TASK}.real.ter.lm_eval_reported[0]",
     lambda r: r["scores"][TASK]["real"]["ter"].update(lm_eval_reported=[1.0])),
    (f"scores.{TASK}.regurg_scripted.ter.ci_high",
     lambda r: r["scores"][TASK]["regurg_scripted"]["ter"].update(ci_high=101.0)),
    (f"degradation.{TASK}.regurg_scripted.chrf.estimate",
     lambda r: r["degradation"][TASK]["regurg_scripted"]["chrf"].update(estimate=0.5)),
    (f"recovery.{TASK}.m2_multigen.regurg_scripted.chrf.status",
     lambda r: r["recovery"][TASK]["m2_multigen"]["regurg_scripted"]["chrf"].update(status="ok")),
    (f"checks.{TASK}.n_test_sentences", lambda r: r["checks"][TASK].update(n_test_sentences=4)),
])
def test_edited_number_is_rejected_naming_the_field(run, field, change):
    _edit(run, change)
    message = _rejected(run, f"results.json: field '{field}' claims")
    assert "recomputed from" in message


def test_a_left_out_mitigation_is_caught(run):
    _edit(run, lambda r: r["recovery"][TASK].pop("m1_topk_scripted"))
    _rejected(run, f"results.json: field 'recovery.{TASK}.m1_topk_scripted' must give every metric")


def test_edited_hypothesis_is_caught(run):
    path = _samples(run)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows[0]["filtered_resps"] = [rows[0]["target"]]  # a perfect translation, after the fact
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _rejected(run, "but its logged samples give")


def test_edited_references_are_caught(run):
    for path in (run / "evals").rglob("samples_*.jsonl"):  # every student's, so they still agree
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        rows[0]["target"] = rows[0]["filtered_resps"][0]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _rejected(run, "the reference of doc_id 0 is not the published test set's")


def test_oversized_results_json(run):
    with open(run / "results.json", "a", encoding="utf-8") as handle:
        handle.write(" " * schema.MAX_RESULTS_BYTES)  # still valid JSON, just too large
    _rejected(run, "results.json: file too large")


def test_oversized_samples_file(run, monkeypatch):
    monkeypatch.setattr(schema, "MAX_SAMPLES_BYTES", _samples(run).stat().st_size - 1)
    _rejected(run, "file too large")


@pytest.mark.parametrize("kind, leaderboard, model", [
    ("leaderboard", "../outside", "m"),
    ("leaderboard", "a/b", "m"),
    ("leaderboard", "..", "m"),
    ("leaderboard", ".hidden", "m"),
    ("model", "demo", "x/../../y"),
    ("model", "demo", "my model"),
    ("model", "demo", "a..b"),
])
def test_names_with_path_tricks(run, kind, leaderboard, model):
    _rejected(run, f"{kind} name {(model if kind == 'model' else leaderboard)!r} is not allowed",
              leaderboard=leaderboard, model=model)


def test_unsafe_run_name_needs_a_model_name(run):
    _edit(run, lambda r: r.update(name="my run/1"))
    _rejected(run, "pass --model-name", model=None)


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "evals/../../x.jsonl"])
def test_samples_path_outside_the_run(run, path):
    _edit(run, lambda r: r["students"]["real-s0"]["samples"].update({TASK: path}))
    _rejected(run, f"field 'students.real-s0.samples.{TASK}': {path!r} must be a path relative to the run folder, "
                   "without '..'")


def test_symlink_escaping_the_run(run, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    shutil.copy(_samples(run), outside)
    os.symlink(outside, run / "evals" / "link.jsonl")
    _edit(run, lambda r: r["students"]["real-s0"]["samples"].update({TASK: "evals/link.jsonl"}))
    _rejected(run, "outside the run folder")


def test_results_json_symlink_escaping_the_run(run, tmp_path):
    shutil.move(run / "results.json", tmp_path / "results.json")
    os.symlink(tmp_path / "results.json", run / "results.json")
    _rejected(run, "results.json: 'results.json' resolves to")


def test_unsafe_condition_name(run):
    _edit(run, lambda r: r["conditions"].update({"<script>": r["conditions"]["real"]}))
    _rejected(run, "field 'conditions.<script>.[key]'")


def test_duplicate_entry(run, tmp_path):
    root = tmp_path / "boards"
    submit(run, "demo", root, "tiny-model")
    with pytest.raises(SubmissionError, match="duplicate entry: .* already holds model 'tiny-model' with config hash"):
        submit(run, "demo", root, "tiny-model")
    submit(run, "demo", root, "another-model")  # another model with the same numbers is a different entry
    assert len(validate_leaderboard(root, "demo")) == 2


def test_cli_rejection_exits_1_with_the_message(run, tmp_path):
    _edit(run, lambda r: r["task_versions"].update({TASK: "0.1"}))
    res = runner.invoke(app, ["submit", str(run), "--leaderboard", "demo", "--root", str(tmp_path / "b")])
    assert res.exit_code == 1
    assert "error: rule 'same-task-and-signatures': results.json: field 'task_versions" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "b" / "demo" / "entries").exists()


def test_multi_seed_run_is_recomputed(run):
    """Several seeds per condition (the bootstrap also resamples seeds, each condition's draws from its own
    name, so the order of the conditions does not matter): every number is recomputed and accepted."""
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    conds = sorted(results["conditions"])
    first = {s["condition"]: s for s in results["students"].values()}
    for i, cond in enumerate(conds):  # a second seed per condition: another condition's logged outputs
        other = first[conds[(i + 1) % len(conds)]]
        results["students"][f"{cond}-s1"] = {**first[cond], "seed": 1, "samples": other["samples"],
                                             "results_file": other["results_file"]}
        results["conditions"][cond]["seeds"] = [0, 1]
    results["condition_order"] = conds[::-1]
    results["config"]["seeds"] = [0, 1]  # and the recorded config plans two seeds (its hash recomputed)
    results["config_hash"] = _config_hash(results["config"])
    (run / "results.json").write_text(json.dumps(results), encoding="utf-8")
    _recompute(run)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    entry = make_entry(run, "demo", "two-seeds")
    assert entry.seeds == [0, 1] and entry.conditions["real"].seeds == [0, 1]
    assert entry.scores[TASK]["real"]["bleu"].per_seed == results["scores"][TASK]["real"]["bleu"]["per_seed"]
    assert entry.scores[TASK]["real"]["chrf"].ci_low == results["scores"][TASK]["real"]["chrf"]["ci_low"]


# ------------------------------------------------------------------------------- validate
@pytest.fixture
def board(run, tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "boards"
    return root, submit(run, "demo", root, "tiny-model")


def test_validate_rejects_a_hand_edited_entry(board):
    root, path = board
    data = json.loads(path.read_text(encoding="utf-8"))
    data["scores"][TASK]["real"]["bleu"]["score"] = 42.0
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SubmissionError, match="does not match its entry id"):
        validate_leaderboard(root, "demo")
    res = runner.invoke(app, ["leaderboard", "validate", "demo", "--root", str(root)])
    assert res.exit_code == 1 and "does not match its entry id" in res.output
    assert runner.invoke(app, ["leaderboard", "build", "demo", "--root", str(root)]).exit_code == 1


def test_validate_rejects_unknown_entry_fields(board):
    root, path = board
    data = json.loads(path.read_text(encoding="utf-8"))
    data["submitted_at"] = "2026-01-01"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SubmissionError, match="field 'submitted_at': unknown field"):
        validate_leaderboard(root, "demo")


def test_validate_rejects_a_renamed_entry_and_stray_files(board):
    root, path = board
    path.rename(path.with_name("other.json"))
    with pytest.raises(SubmissionError, match="but the file is other.json"):
        validate_leaderboard(root, "demo")
    (path.parent / "other.json").unlink()
    (path.parent / "notes.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SubmissionError, match="unexpected file"):
        validate_leaderboard(root, "demo")


def test_validate_unknown_leaderboard(tmp_path):
    with pytest.raises(SubmissionError, match="no leaderboard 'nope'"):
        validate_leaderboard(tmp_path, "nope")


# ------------------------------------------------------------------------------- determinism
def _variant(entry: LeaderboardEntry, model: str, real_bleu: float) -> LeaderboardEntry:
    """The same entry under another model name with another REAL BLEU (a stand-in for another run)."""
    body = entry.model_dump(mode="json", by_alias=True)
    body["model"] = model
    body["scores"][TASK]["real"]["bleu"].update(score=real_bleu, ci_low=real_bleu - 1, ci_high=real_bleu + 1,
                                                per_seed=[real_bleu])
    return finalize_entry(body)


def test_build_is_byte_identical_and_independent_of_entry_order(run, tmp_path):
    base = make_entry(run, "demo", "tiny-model")
    entries = [base, _variant(base, "zeta", 9.5), _variant(base, "alpha", 10.25), _variant(base, "mid", 100.0)]
    outputs = []
    for attempt in range(3):
        folder = tmp_path / f"build{attempt}"
        folder.mkdir()
        shuffled = entries[:]
        random.Random(attempt).shuffle(shuffled)
        render.build(folder, "demo", shuffled)
        outputs.append({p.name: p.read_bytes() for p in sorted(folder.iterdir())})
    assert set(outputs[0]) == {"README.md", "index.html", "scores.png"}
    assert outputs[0] == outputs[1] == outputs[2]
    # the CLI path: a real submitted entry, re-checked from its evidence, renders as render.build does
    root = tmp_path / "root"
    submit(run, "demo", root, "tiny-model")
    assert runner.invoke(app, ["leaderboard", "build", "demo", "--root", str(root)]).exit_code == 0
    alone = tmp_path / "alone"
    alone.mkdir()
    render.build(alone, "demo", [base])
    assert {n: (root / "demo" / n).read_bytes() for n in ("README.md", "index.html")} == {
        n: (alone / n).read_bytes() for n in ("README.md", "index.html")}


def test_empty_leaderboard_builds(tmp_path):
    (tmp_path / "demo" / "entries").mkdir(parents=True)
    res = runner.invoke(app, ["leaderboard", "build", "demo", "--root", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "No entries yet" in (tmp_path / "demo" / "README.md").read_text(encoding="utf-8")
    assert not (tmp_path / "demo" / "scores.png").exists()


# ------------------------------------------------------------------------------- data only
def test_submission_is_never_executed_or_unpickled(run, tmp_path, monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("a submission must be read as data only")

    real_yaml_load = yaml.load

    def safe_only(stream, Loader):
        if not issubclass(Loader, yaml.SafeLoader):
            forbidden()
        return real_yaml_load(stream, Loader=Loader)

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(yaml, "unsafe_load", forbidden)
    monkeypatch.setattr(yaml, "full_load", forbidden)
    monkeypatch.setattr(yaml, "load", safe_only)
    # A pickle beside the samples and YAML-looking strings in results.json are just ignored data.
    (run / "evals" / "payload.pkl").write_bytes(pickle.dumps({"x": 1}))
    _edit(run, lambda r: r.update(note="!!python/object/apply:os.system ['touch /tmp/pwned']"))
    assert submit(run, "demo", tmp_path / "boards", "tiny-model").is_file()


def test_task_yaml_is_read_with_a_safe_loader(tmp_path):
    folder = tmp_path / "tasks" / "regurg_mt"
    folder.mkdir(parents=True)
    (folder / "_template.yaml").write_text("class: !function utils.Task\nmetadata:\n  version: 7.0\n", encoding="utf-8")
    (folder / "regurg_mt_xx-yy.yaml").write_text("include: _template.yaml\ntask: regurg_mt_xx-yy\n", encoding="utf-8")
    # the YAML's version and the released versions that stay comparable (provenance.py)
    assert known_task_versions(tmp_path / "tasks") == {"regurg_mt_xx-yy": {"7.0", "1.1", "1.2"}}
    marker = tmp_path / "pwned"
    (folder / "regurg_mt_evil.yaml").write_text(
        f"task: !!python/object/apply:os.system ['touch {marker}']\nmetadata: {{version: 1.1}}\n", encoding="utf-8")
    with pytest.raises(yaml.constructor.ConstructorError):
        known_task_versions(tmp_path / "tasks")
    assert not marker.exists()


# ------------------------------------------------------------------------------- evidence and rules
def _copy_references(share: float, only: str | None = None):
    def change(condition: str, rows: list[dict]) -> list[dict]:
        if only is None or condition == only:
            for r in rows[: round(share * len(rows))]:
                r["filtered_resps"] = [r["target"]]
        return rows
    return change


def _keep_docs(ids: set[int]):
    return lambda _condition, rows: [r for r in rows if r["doc_id"] in ids]


FORGERIES = {
    "reference-copying": (_copy_references(1.0), "rule 'plausibility': 100% of the hypotheses of condition"),
    "one-mitigation-copying": (_copy_references(1.0, only="m1_topk_scripted"),
                               "rule 'plausibility': 100% of the hypotheses of condition 'm1_topk_scripted'"),
    "subset": (_keep_docs({0, 2, 4}), "rule 'full-test-set': "),
    "five-sentences": (_keep_docs(set(range(5))), "rule 'full-test-set': "),
}


@pytest.mark.parametrize("kind", sorted(FORGERIES))
def test_self_consistent_forgeries_are_refused_by_submit_and_by_validate(run, tmp_path, kind):
    change, needle = FORGERIES[kind]
    _forge(run, change)
    root = tmp_path / "boards"
    res = runner.invoke(app, ["submit", str(run), "-l", "demo", "--root", str(root), "-m", "forger"])
    assert res.exit_code == 1 and f"error: {needle}" in res.output, res.output
    if kind in ("subset", "five-sentences"):
        assert f"the published test set of {TASK} has {N_TEST}" in res.output
    assert not (root / "demo" / "entries").exists()
    # a patched submit writes it anyway: the board's own check refuses it
    path = _forged_submit(run, root, "forger")
    res = runner.invoke(app, ["leaderboard", "validate", "demo", "--root", str(root)])
    assert res.exit_code == 1 and f"error: demo/entries/{path.name}: {needle}" in res.output, res.output


def test_forged_entry_with_recomputed_id_is_refused_by_validate_and_build(run, tmp_path):
    """REAL = REGURG = 100 and D = -0.257 typed into an entry, its id recomputed: the evidence says otherwise."""
    root = tmp_path / "boards"
    path = submit(run, "demo", root, "tiny-model")
    body = json.loads(path.read_text(encoding="utf-8"))
    for cond in ("real", "regurg_scripted"):
        body["scores"][TASK][cond]["bleu"].update(score=100.0, ci_low=100.0, ci_high=100.0, per_seed=[100.0])
    body["degradation"][TASK]["regurg_scripted"]["bleu"]["estimate"] = -0.257
    forged = finalize_entry(body)
    path.unlink()
    (path.parent / f"{forged.entry_id}.json").write_text(forged.to_json(), encoding="utf-8")
    for command in ("validate", "build"):
        res = runner.invoke(app, ["leaderboard", command, "demo", "--root", str(root)])
        assert res.exit_code == 1, res.output
        assert re.search(r"rule 'evidence': field '(degradation|scores)\.[^']*bleu[^']*' is .*, but recomputed from "
                         r"its evidence it is", res.output), res.output
    assert not (root / "demo" / "README.md").exists()


def test_missing_or_altered_evidence_is_refused(run, tmp_path):
    root = tmp_path / "boards"
    path = submit(run, "demo", root, "tiny-model")
    bundle = next((root / "demo" / "evidence").iterdir())
    packed = bundle.read_bytes()
    bundle.unlink()
    with pytest.raises(SubmissionError, match=rf"demo/entries/{re.escape(path.name)}: rule 'evidence': the evidence "
                                              r"demo/evidence/[0-9a-f]{64}\.jsonl\.gz is missing"):
        validate_leaderboard(root, "demo")
    import gzip

    raw = gzip.decompress(packed).replace(b"\\u2028", b"", 1) + b"\n"  # any change at all
    bundle.write_bytes(gzip.compress(raw))
    with pytest.raises(SubmissionError, match="rule 'evidence': .* does not match its hash"):
        validate_leaderboard(root, "demo")


def test_entries_without_evidence_are_refused(tmp_path):
    """The v1 entries (numbers only, archived in the board) cannot be re-checked: validate refuses them."""
    archived = Path(__file__).parent.parent / "leaderboards" / "bible-en-es" / "archive" / "protocol-v1"
    board = tmp_path / "bible-en-es" / "entries"
    board.mkdir(parents=True)
    copied = 0
    for path in archived.glob("*.json"):
        assert json.loads(path.read_text(encoding="utf-8"))["schema"] == "regurg-bench/leaderboard-entry/v1"
        shutil.copy(path, board / path.name)
        copied += 1
    assert copied == 2
    with pytest.raises(SubmissionError, match="rule 'evidence': schema regurg-bench/leaderboard-entry/v1 entries "
                                              "carry no evidence"):
        validate_leaderboard(tmp_path, "bible-en-es")


def test_contaminated_entry_is_flagged_and_never_first(run, tmp_path):
    root = tmp_path / "boards"
    submit(run, "demo", root, "zz-honest")
    _forge(run, _copy_references(0.15, only="regurg_scripted"))
    path = submit(run, "demo", root, "aa-copier")  # accepted, flagged (an exact copy is a near-copy too, and the
    flagged = json.loads(path.read_text(encoding="utf-8"))  # copies lift the condition far above REAL)
    assert flagged["flags"] == ["contaminated", "near-copy", "above-real"]
    assert flagged["plausibility"][TASK]["regurg_scripted"]["copied_reference"] == pytest.approx(0.15, abs=0.001)
    res = runner.invoke(app, ["leaderboard", "build", "demo", "--root", str(root)])  # re-checks both
    assert res.exit_code == 0, res.output
    readme = (root / "demo" / "README.md").read_text(encoding="utf-8")
    assert readme.index("| zz-honest |") < readme.index("| aa-copier | contaminated,near-copy,above-real | unverified | 15.0% |")
    page = (root / "demo" / "index.html").read_text(encoding="utf-8")
    assert f'data-entry-id="{flagged["entry_id"]}" data-flagged="1"' in page


def test_a_required_condition_left_out_is_refused(run):
    def drop(r):
        r["conditions"].pop("m3_detector_scripted")
        r["students"].pop("m3_detector_scripted-s0")
        r["condition_order"].remove("m3_detector_scripted")
        for per in r["scores"].values():
            per.pop("m3_detector_scripted")
        for per in r["recovery"].values():
            per.pop("m3_detector_scripted", None)
    _edit(run, drop)
    _rejected(run, "rule 'required-conditions': the run must score exactly the conditions its config plans; "
                   "missing: m3_detector_scripted")


def test_config_hash_must_be_the_recorded_configs(run):
    _edit(run, lambda r: r["config"]["train"].update(max_steps=4))
    _rejected(run, "rule 'required-conditions': results.json field 'config_hash' is ")


def test_line_separators_inside_a_hypothesis_are_text(run):
    """lm-eval writes samples with ensure_ascii=False: U+2028, U+2029 and U+0085 are characters, not line ends."""
    def odd(condition: str, rows: list[dict]) -> list[dict]:
        if condition == "real":
            rows[0]["filtered_resps"] = [rows[0]["filtered_resps"][0] + "\u2028y\u2029z\u0085"]
        return rows
    _forge(run, odd)
    assert "\u2028" in _samples(run).read_text(encoding="utf-8")
    assert make_entry(run, "demo", "odd").n_test_sentences == {TASK: N_TEST}


def test_resamples_are_bounded_and_huge_integers_are_clean_errors(run):
    _edit(run, lambda r: r["scoring"].update(resamples=10**6))
    _rejected(run, f"results.json: field 'scoring.resamples': Input should be less than or equal to "
                   f"{schema.MAX_RESAMPLES}")
    text = (run / "results.json").read_text(encoding="utf-8")
    (run / "results.json").write_text(text.replace('"resamples": 1000000', '"resamples": 1' + "0" * 5000), "utf-8")
    _rejected(run, "results.json: field 'scoring.resamples' is an integer of 5,001 digits: too large")


def test_evidence_bundle_is_deterministic_and_data_only(run):
    import gzip

    res, text = load_run(run)
    first, second = (evidence.pack(evidence.gather(run, text, res)) for _ in range(2))
    assert first == second
    files = evidence.unpack(gzip.decompress(first[0]), "bundle")
    assert "results.json" in files and all(isinstance(t, str) for t in files.values())
    samples = next(t for p, t in files.items() if "samples_" in p)  # trimmed to what verification reads
    assert set(json.loads(samples.split("\n")[0])) == {"doc_id", "target", "filtered_resps"}


# ------------------------------------------------------------------------------- near-copies and implausible effects
def _near_copy(every: int, only: str):
    """Every ``every``-th hypothesis of ``only`` becomes its reference minus the last word (the issue's forgery)."""
    def change(condition: str, rows: list[dict]) -> list[dict]:
        if condition == only:
            for r in sorted(rows, key=lambda r: r["doc_id"])[::every]:
                r["filtered_resps"] = [" ".join(r["target"].split()[:-1])]
        return rows
    return change


def _paraphrase(only: str):
    """Every hypothesis of ``only`` becomes its reference reworded: first two words swapped, lower case, no
    final punctuation (no hypothesis equals its reference)."""
    def change(condition: str, rows: list[dict]) -> list[dict]:
        if condition == only:
            for r in rows:
                words = r["target"].rstrip(".;:!?").lower().split()
                r["filtered_resps"] = [" ".join(words[1:2] + words[:1] + words[2:])]
        return rows
    return change


NEAR_COPIES = {
    "every-third-minus-last-word": (_near_copy(3, "m1_topk_scripted"),
                                    "rule 'near-copy': 33% of the hypotheses of condition 'm1_topk_scripted'"),
    "paraphrased-references": (_paraphrase("m3_detector_scripted"),
                               "rule 'near-copy': 100% of the hypotheses of condition 'm3_detector_scripted'"),
    "30-percent-copies": (_copy_references(0.3, only="regurg_scripted"),
                          "rule 'plausibility': 30% of the hypotheses of condition 'regurg_scripted'"),
}


@pytest.mark.parametrize("kind", sorted(NEAR_COPIES))
def test_near_copies_are_refused_by_submit_and_by_validate(run, tmp_path, kind):
    """Self-consistent entries (every number recomputed by the project's scoring) whose hypotheses come close to
    their references without copying them all: refused, naming the rule and the condition."""
    change, needle = NEAR_COPIES[kind]
    _forge(run, change)
    root = tmp_path / "boards"
    res = runner.invoke(app, ["submit", str(run), "-l", "demo", "--root", str(root), "-m", "forger"])
    assert res.exit_code == 1 and f"error: {needle}" in res.output, res.output
    path = _forged_submit(run, root, "forger")  # a patched submit writes it anyway: the board's own check refuses it
    res = runner.invoke(app, ["leaderboard", "validate", "demo", "--root", str(root)])
    assert res.exit_code == 1 and f"error: demo/entries/{path.name}: {needle}" in res.output, res.output


def test_five_percent_copies_are_flagged_near_copy(run, tmp_path):
    """Below the exact-copy flag (10 %), above the near-copy flag (2 %): shown, flagged, ranked last."""
    _forge(run, _copy_references(0.05, only="m1_topk_scripted"))
    entry = make_entry(run, "demo", "copier")
    assert "near-copy" in entry.flags and "contaminated" not in entry.flags
    assert entry.plausibility[TASK]["m1_topk_scripted"].copied_reference == pytest.approx(0.05, abs=0.001)


def test_honest_runs_raise_no_plausibility_signal(run):
    """The honest tiny run: no near-copy, no condition above REAL, the measured statistics far from the thresholds
    (the default run's are in benchmarks/plausibility_calibration.py)."""
    res, _ = load_run(run)
    scores = res.scores[TASK]
    for metric in scores["real"]:
        assert max(gain for _z, gain in rules.above_real(scores, metric).values()) < rules.ABOVE_REAL_FLAG_POINTS / 2
    entry = make_entry(run, "demo", "honest")
    assert entry.flags == []


def _apertium_or_skip() -> None:
    from regurg_bench.generation.apertium_backend import supported_directions

    if shutil.which("apertium") is None or ("en", "es") not in supported_directions():
        if os.environ.get("REGURG_BENCH_REQUIRE_APERTIUM") == "1":
            raise RuntimeError("REGURG_BENCH_REQUIRE_APERTIUM=1 but Apertium en->es is not installed")
        pytest.skip("Apertium is not installed (apt-get install apertium apertium-eng-spa)")


def test_a_condition_boosted_far_above_real_is_refused(run):
    """One mitigation's outputs replaced by a real, much better MT system's (Apertium's translations of the test
    sources): no copy of a reference, every number self-consistent, but far above REAL."""
    _apertium_or_skip()
    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.generation import ApertiumGenerator

    sources = [p.source for p in load_bible_pairs("en-es", "test")]
    with ApertiumGenerator() as apertium:
        better = [r.text for r in apertium.generate(sources, "en", "es")]

    def boost(condition: str, rows: list[dict]) -> list[dict]:
        if condition == "m2_multigen":
            for r in rows:
                r["filtered_resps"] = [better[r["doc_id"]]]
        return rows
    _forge(run, boost)
    message = _rejected(run, "rule 'above-real': condition 'm2_multigen' beats REAL on regurg_mt_en-es")
    assert "standard errors (refused from 10 and 15)" in message


def test_outlier_seed_and_above_real_statistics():
    """The two effect rules on known numbers: a seed far from its condition's others, a condition far above REAL."""
    from types import SimpleNamespace as S

    def row(per_seed, half=0.5):
        mean = sum(per_seed) / len(per_seed)
        return {"bleu": S(score=mean, ci_low=mean - half, ci_high=mean + half, per_seed=per_seed)}

    honest = {"real": row([10.0, 10.4, 9.8]), "regurg_a": row([8.0, 8.3, 7.9]), "m1_x": row([9.0, 8.7, 9.1])}
    assert rules.effect_flags({"t": honest}) == []
    one_seed_out = honest | {"m1_x": row([9.0, 8.7, 14.0])}
    z = rules.outlier_seed_z(one_seed_out, "bleu")
    assert max(z, key=z.get) == ("m1_x", 2) and z[("m1_x", 2)] > rules.OUTLIER_SEED_Z
    assert rules.effect_flags({"t": one_seed_out}) == ["outlier-seed"]
    significant_but_small = honest | {"m1_x": row([11.7, 11.9, 11.6])}  # +1.6 BLEU at z = 3.2: an honest result
    assert rules.effect_flags({"t": significant_but_small}) == []
    above = honest | {"m1_x": row([16.0, 16.2, 15.9], half=0.8)}  # +6 BLEU, se 0.41/0.26: z = 12.3
    assert rules.effect_flags({"t": above}) == ["above-real"]
    with pytest.raises(SubmissionError, match="rule 'above-real': condition 'm1_x' beats REAL on t bleu by 20.0 points"):
        rules.effect_flags({"t": honest | {"m1_x": row([30.0, 30.2, 29.9])}})
    ter = {"real": {"ter": row([80.0, 80.5, 79.5])["bleu"]}, "m": {"ter": row([60.0, 60.5, 59.5])["bleu"]}}
    assert rules.above_real(ter, "ter")["m"][1] == pytest.approx(20.0)  # lower TER is better: a gain
