"""Entry schema v3 (the collapse curve) and ``leaderboard migrate``: a real tiny collapse run (the
``tiny_collapse_board`` fixture: the tiny collapse study on the full published test set, submitted once) gives a
v3 entry whose curve is results.json's; plain runs and committed entries keep their v2 bytes; every entry is
re-checked under its own schema version (v1 read only); migration upgrades a v2 entry of a collapse run to v3
once and changes nothing else (the committed board included). The page is tested in a real browser in
tests/test_leaderboard_browser.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from regurg_bench.cli import app
from regurg_bench.leaderboard import evidence, verifications
from regurg_bench.leaderboard.migrate import migrate_leaderboard
from regurg_bench.leaderboard.render import build
from regurg_bench.leaderboard.rerun import load_entry
from regurg_bench.leaderboard.safe_io import write_file
from regurg_bench.leaderboard.schema import (
    CURVE_ENTRY_SCHEMA,
    ENTRY_SCHEMA,
    LeaderboardEntry,
    LeaderboardEntryV1,
    SubmissionError,
)
from regurg_bench.leaderboard.submit import (
    entries_dir,
    entry_from_evidence,
    finalize_entry,
    load_run,
    make_entry,
    read_entry,
    validate_leaderboard,
)

BOARDS = Path(__file__).resolve().parents[1] / "leaderboards"
DETECTABILITY = ("detectable", "seeds_needed", "seed_share")
runner = CliRunner()


def _present(tree):
    """results.json's effect without the detectability fields that are null (an entry leaves them out)."""
    if not isinstance(tree, dict):
        return tree
    return {k: _present(v) for k, v in tree.items() if not (v is None and k in DETECTABILITY)}


def _copy_run(run: Path, dst: Path) -> Path:
    """What a submission reads (results.json and the lm-eval outputs), safe to change."""
    dst.mkdir()
    shutil.copy(run / "results.json", dst / "results.json")
    shutil.copytree(run / "evals", dst / "evals")
    if (run / "collapse" / "evals").is_dir():  # the collapse students' samples: the curve is recomputed from them
        shutil.copytree(run / "collapse" / "evals", dst / "collapse" / "evals")
    return dst


def _edit(run: Path, change) -> None:
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    change(results)
    (run / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")


def _v2_entry_of(run: Path, root: Path, leaderboard: str) -> Path:
    """What `submit` wrote for a collapse run before v3 existed: a v2 entry (no curve) with its evidence."""
    res, text = load_run(run)
    files = evidence.gather(run, text, res)
    packed, digest, size = evidence.pack(files)
    entry = entry_from_evidence(evidence.BundleFiles(files, "bundle"), leaderboard, "collapse-tiny",
                                {"sha256": digest, "files": len(files), "bytes": size}, version=ENTRY_SCHEMA)
    evidence.store(entries_dir(root, leaderboard).parent, packed, digest)
    path = entries_dir(root, leaderboard) / f"{entry.entry_id}.json"
    write_file(path, entry.to_json())
    return path


# ------------------------------------------------------------------------------------- the entry
def test_collapse_run_gives_a_v3_entry_carrying_the_curve(tiny_collapse_board):
    run, results, path = tiny_collapse_board
    entry = json.loads(path.read_text(encoding="utf-8"))
    c, task = results["collapse"], results["tasks"][0]
    assert entry["schema"] == CURVE_ENTRY_SCHEMA == "regurg-bench/leaderboard-entry/v3"
    curve = entry["collapse"]
    assert (curve["generations"], curve["modes"], curve["seeds"]) == (2, ["replace", "accumulate",
                                                                          "accumulate_equal"], [0, 1])
    # D_k per mode, generation and metric: results.json's numbers, intervals and statuses, exactly
    assert curve["degradation"] == _present(c["degradation"])
    assert sorted(curve["degradation"][task]) == sorted(c["modes"])
    assert all(sorted(gens) == ["1", "2"] for gens in curve["degradation"][task].values())
    d = curve["degradation"][task]["replace"]["2"]["chrf"]
    assert (d["estimate"], d["ci_low"], d["ci_high"]) == tuple(c["degradation"][task]["replace"]["2"]["chrf"][k]
                                                               for k in ("estimate", "ci_low", "ci_high"))
    # every generation's score with its interval and per-seed values
    for cond in c["conditions"]:
        for metric, s in c["scores"][task][cond].items():
            assert curve["scores"][task][cond][metric] == {k: s[k] for k in ("score", "ci_low", "ci_high", "per_seed")}
            assert len(s["per_seed"]) == 2
    # the claims with their verdicts, pooled and seed by seed
    assert len(curve["claims"]) == len(c["claims"]) == 8
    for mine, theirs in zip(curve["claims"], c["claims"], strict=True):
        assert (mine["claim"], mine["mode"], mine["text"]) == (theirs["claim"], theirs["mode"], theirs["text"])
        if theirs["claim"] == "collapse_tail":  # its verdict, seed by seed, and its interval per generation
            assert (mine["verdict"], mine["per_seed_verdicts"]) == (theirs["verdict"], theirs["per_seed_verdicts"])
            assert mine["per_generation"] == [{k: g[k] for k in ("generation", "estimate", "ci_low", "ci_high")}
                                              for g in theirs["per_generation"]]
            assert [g["generation"] for g in mine["per_generation"]] == [1, 2]
            continue
        for metric, e in theirs["per_metric"].items():
            got = mine["per_metric"][metric]
            assert {k: got[k] for k in ("estimate", "ci_low", "ci_high", "verdict", "per_seed_verdicts")} == \
                {k: e[k] for k in ("estimate", "ci_low", "ci_high", "verdict", "per_seed_verdicts")}
            assert len(got["per_seed_verdicts"]) == 2
    # the main matrix is what a plain entry carries
    assert entry["scores"][task]["real"]["bleu"]["score"] == results["scores"][task]["real"]["bleu"]["score"]
    assert [e.entry_id for e in validate_leaderboard(path.parent.parent.parent, "demo")] == [entry["entry_id"]]


def test_a_curve_edited_in_the_entry_is_refused_naming_the_field(tiny_collapse_board, tmp_path):
    run, results, path = tiny_collapse_board
    board = tmp_path / "demo"
    shutil.copytree(path.parent.parent, board)
    data = json.loads(path.read_text(encoding="utf-8"))
    task = results["tasks"][0]
    data["collapse"]["degradation"][task]["accumulate"]["1"]["bleu"]["estimate"] += 0.25
    forged = finalize_entry(data)  # the id recomputed, as a forger would
    (board / "entries" / path.name).unlink()
    write_file(board / "entries" / f"{forged.entry_id}.json", forged.to_json())
    with pytest.raises(SubmissionError, match=rf"rule 'evidence': field 'collapse\.degradation\.{task}\.accumulate"
                                              r"\.1\.bleu\.estimate'"):
        validate_leaderboard(tmp_path, "demo")


def test_a_curve_its_samples_do_not_give_is_refused(tiny_collapse_board, tmp_path):
    """The curve is recomputed from the collapse students' samples in the evidence: a results.json whose D_k,
    score or claim was edited is refused naming the field; a missing samples file is named too."""
    run, results, _ = tiny_collapse_board
    task = results["tasks"][0]
    edits = {
        rf"collapse\.degradation\.{task}\.replace\.2\.chrf\.estimate":
            lambda r: r["collapse"]["degradation"][task]["replace"]["2"]["chrf"].update(estimate=-0.5),
        rf"collapse\.scores\.{task}\.accumulate_gen1\.bleu\.score":
            lambda r: r["collapse"]["scores"][task]["accumulate_gen1"]["bleu"].update(score=12.5),
        r"collapse\.claims\.collapse_growth\.replace\..*\.verdict":
            lambda r: next(c for c in r["collapse"]["claims"] if c["claim"] == "collapse_growth"
                           and c["mode"] == "replace")["per_metric"]["chrf"].update(verdict="holds (forged)"),
    }
    for i, (needle, change) in enumerate(edits.items()):
        copy = _copy_run(run, tmp_path / f"edit{i}")
        _edit(copy, change)
        with pytest.raises(SubmissionError, match=needle):
            make_entry(copy, "demo", "collapse-tiny")
    copy = _copy_run(run, tmp_path / "nosamples")
    _edit(copy, lambda r: r["collapse"]["students"]["replace_gen1-s1"].pop("samples"))
    with pytest.raises(SubmissionError, match=r"collapse\.students\.replace_gen1-s1"):
        make_entry(copy, "demo", "collapse-tiny")


def test_schema_version_follows_the_content(tiny_collapse_board):
    """v3 exactly when the curve is there: a v2 entry with a curve, or a v3 entry without one, is invalid."""
    _, _, path = tiny_collapse_board
    data = json.loads(path.read_text(encoding="utf-8"))
    LeaderboardEntry.model_validate(data)
    with pytest.raises(ValueError, match="an entry with a collapse curve is regurg-bench/leaderboard-entry/v3"):
        LeaderboardEntry.model_validate({**data, "schema": ENTRY_SCHEMA})
    with pytest.raises(ValueError, match="one without is regurg-bench/leaderboard-entry/v2"):
        LeaderboardEntry.model_validate({k: v for k, v in data.items() if k != "collapse"})
    broken = json.loads(json.dumps(data))
    broken["collapse"]["claims"][0]["per_metric"]["bleu"]["surprise"] = 1
    with pytest.raises(ValueError, match="surprise"):
        LeaderboardEntry.model_validate(broken)


def test_a_run_without_the_section_still_gives_v2_bytes(tiny_collapse_board, tmp_path):
    """The same run without its collapse section: a v2 entry without a ``collapse`` key, byte for byte the v2
    entry the run's evidence gives when re-checked as v2 (what submit wrote before v3)."""
    run, _, _ = tiny_collapse_board
    plain = _copy_run(run, tmp_path / "plain")
    _edit(plain, lambda r: r.pop("collapse"))
    entry = make_entry(plain, "demo", "collapse-tiny")
    assert entry.schema_id == ENTRY_SCHEMA and "collapse" not in json.loads(entry.to_json())
    v2 = read_entry(_v2_entry_of(run, tmp_path / "boards", "demo"), "demo")  # re-checked as v2 from its evidence
    strip = {"evidence", "entry_id"}
    assert json.loads(entry.to_json()).keys() == json.loads(v2.to_json()).keys()
    assert {k: v for k, v in json.loads(entry.to_json()).items() if k not in strip} == \
        {k: v for k, v in json.loads(v2.to_json()).items() if k not in strip}


def test_tail_claim_with_intervals_and_new_fields_is_carried(tiny_collapse_board, tmp_path):
    """The tail claim is modelled tolerantly: a per-generation interval and a plain verdict are carried, fields
    the entry does not model are left out; growth claims keep only the modelled fields."""
    run, _, _ = tiny_collapse_board
    copy = _copy_run(run, tmp_path / "tail")

    def add_intervals(r):
        for cl in r["collapse"]["claims"]:
            if cl["claim"] == "collapse_tail":
                cl.update(verdict="holds", unit="share of tail types kept", per_generation=[
                    {"generation": k, "estimate": 0.1 * k, "ci_low": 0.05 * k, "ci_high": 0.2 * k, "resamples": 40}
                    for k in (1, 2)])
    _edit(copy, add_intervals)
    entry = json.loads(make_entry(copy, "demo", "collapse-tiny").to_json())
    tails = [cl for cl in entry["collapse"]["claims"] if cl["claim"] == "collapse_tail"]
    assert len(tails) == 3 and all(cl["verdict"] == "holds" and "unit" not in cl for cl in tails)
    assert tails[0]["per_generation"] == [{"generation": k, "estimate": 0.1 * k, "ci_low": 0.05 * k,
                                           "ci_high": 0.2 * k} for k in (1, 2)]
    _edit(copy, lambda r: r["collapse"]["claims"][-1].update(per_generation=[{"generation": 0, "estimate": 1.0,
                                                                               "ci_low": 0, "ci_high": 2}]))
    with pytest.raises(SubmissionError, match=r"field 'collapse\.claims\.7\..*generation'"):
        make_entry(copy, "demo", "collapse-tiny")


# ------------------------------------------------------------------------------ old versions
def test_committed_v2_entries_keep_their_bytes_ids_and_pages():
    """Every committed entry is v2, reads back to its own bytes with its id, and the committed pages rebuild
    byte for byte (a page without a curve renders exactly as before)."""
    for path in sorted(BOARDS.glob("*/entries/*.json")) + sorted(BOARDS.glob("*/archive/protocol-v2/*.json")):
        entry = read_entry(path, _board_of(path), recheck=False)
        assert entry.schema_id == ENTRY_SCHEMA and entry.collapse is None
        assert entry.to_json() == path.read_text(encoding="utf-8")


def _board_of(path: Path) -> str:
    return path.relative_to(BOARDS).parts[0]


def test_committed_pages_rebuild_byte_for_byte(tmp_path):
    for board in sorted(p.parent for p in BOARDS.glob("*/index.html")):
        copy = tmp_path / board.name
        shutil.copytree(board, copy)
        entries = [read_entry(p, board.name, recheck=False) for p in sorted((copy / "entries").glob("*.json"))]
        build(copy, board.name, entries)
        for name in ("README.md", "index.html", "scores.png"):
            assert (copy / name).read_bytes() == (board / name).read_bytes(), f"{board.name}/{name}"


def test_v1_entries_are_read_under_their_own_schema_but_never_re_checked(tmp_path):
    archived = sorted(BOARDS.glob("*/archive/protocol-v1/*.json"))
    assert len(archived) == 2
    for path in archived:
        entry = read_entry(path, _board_of(path), recheck=False)  # schema v1 and the id against the file
        assert isinstance(entry, LeaderboardEntryV1) and entry.schema_id == "regurg-bench/leaderboard-entry/v1"
        data = json.loads(path.read_text(encoding="utf-8"))
        data["scores"][entry.tasks[0]]["real"]["bleu"]["score"] += 1.0
        edited = tmp_path / path.name
        edited.write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(SubmissionError, match="does not match its entry id"):
            read_entry(edited, _board_of(path), recheck=False)
        with pytest.raises(SubmissionError, match="rule 'evidence': schema regurg-bench/leaderboard-entry/v1"):
            read_entry(path, _board_of(path))
        board = tmp_path / _board_of(path) / "entries"
        board.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, board / path.name)
        with pytest.raises(SubmissionError, match="entries carry no evidence .*nothing to re-run"):
            load_entry(board / path.name)  # `verify --entry`


# ---------------------------------------------------------------------------------- migration
def test_migrate_upgrades_a_v2_collapse_entry_once(tiny_collapse_board, tmp_path):
    run, _, submitted = tiny_collapse_board
    root = tmp_path / "boards"
    old = _v2_entry_of(run, root, "demo")
    old_bytes = old.read_bytes()
    record = {"by": "someone", "date": "2026-12-05T03:00:00Z", "machine": "test", "regurg_bench_version": "0",
              "rerun": 1, "students": {"real-s0": "reproduced exactly"}, "outcome": "reproduced exactly",
              "seconds": 1.0}
    verifications.append(root / "demo", old.stem, verifications.Verification.model_validate(record))
    assert [e.schema_id for e in validate_leaderboard(root, "demo")] == [ENTRY_SCHEMA]  # valid as v2

    res = runner.invoke(app, ["leaderboard", "migrate", "demo", "--root", str(root), "--dry-run"])
    assert res.exit_code == 0, res.output
    assert f"would migrate {old.stem} ({ENTRY_SCHEMA})" in res.output and old.read_bytes() == old_bytes

    res = runner.invoke(app, ["leaderboard", "migrate", "demo", "--root", str(root)])
    assert res.exit_code == 0, res.output
    (new,) = sorted(entries_dir(root, "demo").glob("*.json"))
    assert not old.exists() and new.name != old.name and f"migrated {old.stem}" in res.output
    assert new.read_bytes() == submitted.read_bytes()  # exactly what submitting the run now gives
    moved = verifications.read(root / "demo", new.stem)
    assert moved is not None and moved.records[0].by == "someone" and verifications.read(root / "demo", old.stem) is None
    assert [e.schema_id for e in validate_leaderboard(root, "demo")] == [CURVE_ENTRY_SCHEMA]

    before = {p: p.read_bytes() for p in (root / "demo").rglob("*") if p.is_file()}
    assert migrate_leaderboard(root, "demo") == []  # idempotent
    assert {p: p.read_bytes() for p in (root / "demo").rglob("*") if p.is_file()} == before


def test_migrate_leaves_the_committed_board_unchanged(tmp_path):
    """The committed board (v2 entries of runs without a curve) needs nothing: its files keep their bytes."""
    for board in sorted(p.parent.parent for p in BOARDS.glob("*/entries/*.json")):
        shutil.copytree(board, tmp_path / board.name, ignore=shutil.ignore_patterns("archive"))
        before = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
        assert migrate_leaderboard(tmp_path, board.name) == []
        assert {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_migrate_refuses_a_board_that_does_not_validate(tiny_collapse_board, tmp_path):
    _, _, path = tiny_collapse_board
    shutil.copytree(path.parent.parent, tmp_path / "demo")
    data = json.loads(path.read_text(encoding="utf-8"))
    data["schema"] = ENTRY_SCHEMA
    (tmp_path / "demo" / "entries" / path.name).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SubmissionError, match="an entry with a collapse curve is"):
        migrate_leaderboard(tmp_path, "demo")
    assert (tmp_path / "demo" / "entries" / path.name).is_file()
