"""``regurg-bench check``: the committed CI baseline passes; drifted splits fail naming the statistic."""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from regurg_bench.builders.build import read_manifest
from regurg_bench.checks import commands, gate
from regurg_bench.checks.baseline import Baseline, Expected, Tolerance, load_baseline
from regurg_bench.checks.compare import compare
from regurg_bench.corpora.base import Pair, PairFingerprint
from regurg_bench.corpora.bible import load_bible_pairs

BASELINES = Path(commands.__file__).parent / "baselines"
CI_CONFIG = BASELINES / "ci_split.config.yaml"
CI_BASELINE = BASELINES / "ci_split.baseline.yaml"

app = typer.Typer()
commands.register(app)


@app.callback()
def _multi() -> None:  # keep `check` a sub-command, as in the real CLI
    pass


runner = CliRunner()


def check(*args) -> tuple[int, str]:
    result = runner.invoke(app, ["check", *map(str, args)], catch_exceptions=False)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The CI split, built once from the committed config (hermetic generation cache)."""
    from regurg_bench.generation.apertium_backend import supported_directions

    if shutil.which("apertium") is None or ("en", "es") not in supported_directions():
        if os.environ.get("REGURG_BENCH_REQUIRE_APERTIUM") == "1":
            raise RuntimeError("REGURG_BENCH_REQUIRE_APERTIUM=1 but Apertium en->es is not installed")
        pytest.skip("Apertium is not installed (apt-get install apertium apertium-eng-spa)")
    out = tmp_path_factory.mktemp("ci-split")
    gate.build_split(CI_CONFIG, out, tmp_path_factory.mktemp("gen-cache"))
    return out


@pytest.fixture(scope="module")
def local_baseline(built, tmp_path_factory) -> Path:
    """A baseline accepted from ``built`` here (independent of this machine's Apertium version)."""
    path = tmp_path_factory.mktemp("baseline") / "baseline.yaml"
    code, out = check(built, "--baseline", path, "--update-baseline")
    assert code == 0, out
    return path


def _copy(built: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "split"
    shutil.copytree(built, dst)
    return dst


def _rewrite_condition(split: Path, name: str, rows: list[dict]) -> None:
    """Write a condition's rows and regenerate its manifest entry, as a (buggy) pipeline would."""
    (split / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                         encoding="utf-8")
    fp = PairFingerprint()
    for r in rows:
        fp.update(Pair(r["id"], r["source"], r["target"], r["src_lang"], r["tgt_lang"]))
    manifest = read_manifest(split)
    manifest["conditions"][name] |= {"pairs": fp.count, "fingerprint": fp.hexdigest()}
    (split / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _failed(json_path: Path) -> dict[str, dict]:
    data = json.loads(json_path.read_text(encoding="utf-8"))
    return {r["name"]: r for r in data["results"] if r["status"] in ("fail", "missing")}


def test_committed_baseline_passes_on_the_rebuilt_ci_split(built, tmp_path):
    baseline = load_baseline(CI_BASELINE)
    assert baseline.config_path().resolve() == CI_CONFIG.resolve()
    args = [built, "--baseline", CI_BASELINE, "--json", tmp_path / "r.json"]
    signature = read_manifest(built)["generators"]["apertium"]["hash"]
    if signature != baseline.stats["generator.apertium.signature"].value:
        args.append("--allow-content-change")  # another Apertium package version: bytes may differ
    code, out = check(*args)
    assert code == 0, out
    assert "PASSED" in out and json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_fewer_real_pairs_fail_on_the_pair_count(built, local_baseline, tmp_path):
    split = _copy(built, tmp_path)
    _rewrite_condition(split, "real", _rows(split / "real.jsonl")[:-10])
    code, out = check(split, "--baseline", local_baseline, "--json", tmp_path / "r.json")
    assert code == 1
    failed = _failed(tmp_path / "r.json")
    assert failed["real.pairs"]["baseline"] == 200 and failed["real.pairs"]["current"] == 190
    assert "real.fingerprint" in failed and "FAIL" in out and "real.pairs" in out
    # Content hashes may be waived; the count still gates.
    code, _ = check(split, "--baseline", local_baseline, "--allow-content-change", "--json", tmp_path / "r2.json")
    assert code == 1 and "real.pairs" in _failed(tmp_path / "r2.json")
    assert "real.fingerprint" not in _failed(tmp_path / "r2.json")


def test_changed_generator_fails_on_kind_signature_and_error_proxies(local_baseline, tmp_path):
    config = yaml.safe_load(CI_CONFIG.read_text(encoding="utf-8"))
    config["generators"]["apertium"] = {"kind": "scripted"}  # same name, another system behind it
    (tmp_path / "changed.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code, out = check(tmp_path / "changed.yaml", "--baseline", local_baseline, "--cache", tmp_path / "cache",
                      "--allow-content-change", "--json", tmp_path / "r.json")
    assert code == 1, out
    failed = _failed(tmp_path / "r.json")
    assert failed["generator.apertium.kind"]["current"] == "scripted"
    assert {"config_hash", "regurg_apertium.diag.chrf_mean"} <= set(failed)
    assert "real.pairs" not in failed  # the human side did not move


def test_leaked_test_verse_fails_on_the_leakage_count(built, local_baseline, tmp_path):
    split = _copy(built, tmp_path)
    acts = load_bible_pairs("en-es", "test")[5]
    rows = _rows(split / "real.jsonl")
    rows.insert(3, {**rows[0], "id": "leak.1", "source": acts.source, "target": acts.target})
    _rewrite_condition(split, "real", rows)
    code, out = check(split, "--baseline", local_baseline, "--junit", tmp_path / "check.xml",
                      "--json", tmp_path / "r.json")
    assert code == 1
    failed = _failed(tmp_path / "r.json")
    assert failed["real.leaked_test_pairs"]["baseline"] == 0 and failed["real.leaked_test_pairs"]["current"] == 1
    assert "real.leaked_test_pairs" in out
    # The JUnit file parses and carries the failing statistic as a failed testcase.
    root = ET.parse(tmp_path / "check.xml").getroot()
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert len(cases) >= 100 and int(root.find("testsuite").get("failures")) == len(failed)
    failure = cases["real.leaked_test_pairs"].find("failure")
    assert failure is not None and "baseline 0, now 1" in failure.get("message")
    assert cases["real.leaked_test_pairs"].get("classname") == "regurg_bench.check.real"
    assert cases["regurg_apertium.pairs"].find("failure") is None


def test_update_baseline_accepts_the_change_and_keeps_tolerances(built, local_baseline, tmp_path):
    split = _copy(built, tmp_path)
    _rewrite_condition(split, "real", _rows(split / "real.jsonl")[:-1])
    baseline = tmp_path / "b.yaml"
    shutil.copy(local_baseline, baseline)
    data = yaml.safe_load(baseline.read_text(encoding="utf-8"))
    data["stats"]["regurg_apertium.diag.mtld"]["tolerance"] = {"rel": 0.2}  # a hand-tuned tolerance
    baseline.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert check(split, "--baseline", baseline)[0] == 1
    code, out = check(split, "--baseline", baseline, "--update-baseline")
    assert code == 0 and "baseline updated" in out
    assert check(split, "--baseline", baseline)[0] == 0
    again = load_baseline(baseline)
    assert again.stats["real.pairs"].value == 199
    assert again.stats["regurg_apertium.diag.mtld"].tolerance == Tolerance(rel=0.2)


def test_bad_inputs_exit_2(tmp_path, local_baseline):
    assert check(tmp_path / "nope", "--baseline", local_baseline)[0] == 2
    assert check(tmp_path, "--baseline", local_baseline)[0] == 2  # a folder without manifest.json
    (tmp_path / "bad.yaml").write_text("stats: {x: {value: 1, tolerance: {pct: 3}}}\n", encoding="utf-8")
    code, out = check(tmp_path, "--baseline", tmp_path / "bad.yaml")
    assert code == 2 and "tolerance" in out


def test_tolerances_and_statuses():
    base = Baseline(stats={
        "a": Expected(10.0, Tolerance(abs=0.5)), "b": Expected(100.0, Tolerance(rel=0.1)),
        "c": Expected(True), "d": Expected(1), "e": Expected("sha256:x", content=True), "gone": Expected(3)})
    res = {r.name: r for r in compare({"a": 10.5, "b": 111.0, "c": 1, "d": 1, "e": "sha256:y", "extra": 1}, base)}
    assert [res[k].status for k in ("a", "b", "c", "d", "e", "gone", "extra")] == \
        ["pass", "fail", "fail", "pass", "fail", "missing", "new"]
    assert "+11" in res["b"].message or "+10" in res["b"].message
    waived = {r.name: r.status for r in compare({"e": "sha256:y"}, base, allow_content_change=True)}
    assert waived["e"] == "warn"
