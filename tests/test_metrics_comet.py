"""COMET for real, offline: the isolated COMET environment, a locally built COMET-architecture
checkpoint (registry-shipped MiniLM encoder, untrained head: TEST-ONLY scores), loaded and scored
through the code path users use (worker + ``load_from_checkpoint(..., local_files_only=True)``), in
lm-eval and ``regurg-bench eval`` runs. The first run creates the COMET environment (~1 min)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.evaluation.signatures import corpus_score
from regurg_bench.metric_table import SACREBLEU_METRICS as CORPUS_METRICS
from regurg_bench.metrics import comet as comet_mod
from regurg_bench.metrics.base import MetricError
from regurg_bench.metrics.cache import ScoreCache
from regurg_bench.metrics.comet import CometMetric, build_test_checkpoint, shutdown_workers

pytestmark = pytest.mark.slow
LIMIT = 4


@pytest.fixture(scope="session")
def comet_env():
    from regurg_bench.metrics.comet_env import comet_python, read_stamp

    python = comet_python(create=True)  # the documented command's code path; cached afterwards
    return python, read_stamp()


@pytest.fixture(scope="session")
def checkpoints(comet_env, tmp_path_factory):
    root = tmp_path_factory.mktemp("comet-ckpt")
    return {kind: build_test_checkpoint(root / kind, kind=kind) for kind in ("regression", "qe")}


@pytest.fixture(scope="module")
def pairs():
    return load_bible_pairs("en-es", "test")[:24]


def _strict_json(path: Path) -> dict:
    def refuse(token):
        raise ValueError(f"non-strict JSON constant {token} in {path}")
    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_environment_is_isolated_with_the_pins(comet_env):
    python, stamp = comet_env
    v = stamp["versions"]
    assert v["unbabel-comet"] == "2.2.7" and v["torch"].startswith("2.13.0")
    assert int(v["transformers"].split(".")[0]) < 5 and int(v["numpy"].split(".")[0]) < 2
    import transformers  # the main environment keeps its own stack

    assert int(transformers.__version__.split(".")[0]) >= 5
    assert Path(python).exists()


def test_checkpoint_loads_scores_and_is_labelled_test_only(checkpoints, pairs, tmp_path):
    m = CometMetric(str(checkpoints["regression"]), cache=ScoreCache(tmp_path / "s.sqlite"))
    assert m.name == "comet" and m.needs_reference and m.test_only
    assert "test-only:yes" in m.signature() and "class:regression_metric" in m.signature()
    info = m.worker_info()
    assert info["class"] == "RegressionMetric" and info["device"] == "cpu" and not info["referenceless"]
    assert info["versions"]["transformers"].startswith("4.")
    # All weights of the checkpoint (encoder + head) really loaded, not re-initialised.
    card = json.loads((checkpoints["regression"] / "regurg_bench_comet_card.json").read_text())
    assert card["test_only"] is True
    assert math.isclose(info["param_checksum"], card["param_checksum"], rel_tol=1e-9)
    src, hyp, ref = [p.source for p in pairs], [p.target for p in pairs], [p.target for p in pairs]
    scores = m.score(hyp, sources=src, references=ref)
    assert len(scores) == len(pairs) and all(math.isfinite(s) for s in scores)
    assert len({round(s, 6) for s in scores}) > len(pairs) // 2  # depends on the input


def test_cache_and_determinism(checkpoints, pairs, tmp_path):
    src, hyp = [p.source for p in pairs], [p.target for p in pairs]
    ref = [p.target for p in pairs[1:] + pairs[:1]]
    cache = ScoreCache(tmp_path / "s.sqlite")
    m = CometMetric(str(checkpoints["regression"]), cache=cache)
    first = m.score(hyp, sources=src, references=ref)
    assert m.last_stats["computed"] == len(pairs) and cache.count(m.signature()) == len(pairs)
    assert m.score(hyp, sources=src, references=ref) == first
    assert m.last_stats["computed"] == 0  # all from the cache (its speed-up: benchmarks/metrics_speed.py)
    # A fresh worker process and no cache: the same numbers.
    shutdown_workers()
    again = CometMetric(str(checkpoints["regression"]), cache=False).score(hyp, sources=src, references=ref)
    assert max(abs(a - b) for a, b in zip(first, again, strict=True)) < 1e-6
    # The reference is used: another reference changes the scores.
    other = CometMetric(str(checkpoints["regression"]), cache=False).score(hyp, sources=src, references=hyp)
    assert other != again


def test_qe_checkpoint_is_reference_free_and_feeds_m1(checkpoints, pairs, monkeypatch):
    from regurg_bench.metrics.quality import quality_signal

    qe = CometMetric(str(checkpoints["qe"]), cache=False)
    assert qe.name == "comet_qe" and qe.referenceless and not qe.needs_reference
    scores = qe.score([p.target for p in pairs], sources=[p.source for p in pairs])
    assert all(math.isfinite(s) for s in scores)
    src, hyp = [p.source for p in pairs[:5]], [p.target for p in pairs[:5]]
    monkeypatch.delenv(comet_mod.QE_MODEL_ENV, raising=False)
    fallback = quality_signal(src, hyp)
    assert fallback.metric == "muse_cos_src" and not fallback.test_only
    monkeypatch.setenv(comet_mod.QE_MODEL_ENV, str(checkpoints["qe"]))
    signal = quality_signal(src, hyp)
    assert signal.metric == "comet_qe" and signal.test_only and signal.scores == pytest.approx(scores[:5], abs=1e-6)
    with pytest.raises(ValueError, match="reference-based"):
        quality_signal(src, hyp, qe_model=str(checkpoints["regression"]))


def test_bad_configuration_fails_loudly(checkpoints, monkeypatch, tmp_path):
    from regurg_bench.evaluation.metric_hooks import comet_embedded_dataset

    monkeypatch.delenv(comet_mod.MODEL_ENV, raising=False)
    monkeypatch.delenv(comet_mod.QE_MODEL_ENV, raising=False)
    with pytest.raises(MetricError, match="need a COMET checkpoint"):
        comet_embedded_dataset("en-es")
    with pytest.raises(MetricError, match="does not exist"):
        comet_embedded_dataset("en-es", comet_model=str(tmp_path / "nope"))
    with pytest.raises(MetricError, match="pass it as comet_qe_model"):
        comet_embedded_dataset("en-es", comet_model=str(checkpoints["qe"]))


def test_generated_task_yaml_is_up_to_date():
    from regurg_bench._lm_eval_hook import task_config_dir
    from regurg_bench.evaluation.generated_yaml import leftover_files
    from regurg_bench.evaluation.neural_task_yaml import FOLDER, render_all

    folder = task_config_dir() / FOLDER
    for name, text in render_all().items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name} is stale: run python -m regurg_bench.evaluation.neural_task_yaml"
    assert leftover_files(folder, render_all()) == [], "YAML the generator does not write: delete it"


def _lm_eval(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lm_eval")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=900, cwd=cwd,
                          env={**os.environ, **(env or {})})


def _results_and_samples(out: Path):
    (results_file,) = out.rglob("results_*.json")
    samples = {}
    for path in out.rglob("samples_*.jsonl"):
        samples[path.name[len("samples_"):].rsplit("_", 1)[0]] = [json.loads(x) for x in path.read_text().splitlines()]
    return _strict_json(results_file), samples


def test_lm_eval_reports_comet_only_where_configured(checkpoints, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    tasks = "regurg_mt_en-es,regurg_mt_comet_en-es,regurg_mt_muse_en-es"
    meta = json.dumps({"comet_model": str(checkpoints["regression"]), "comet_qe_model": str(checkpoints["qe"])})
    proc = _lm_eval(["--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
                     "--tasks", tasks, "--limit", str(LIMIT), "--device", "cpu", "--batch_size", "4",
                     "--log_samples", "--output_path", str(out), "--gen_kwargs", "max_gen_toks=16",
                     "--metadata", meta], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    results, samples = _results_and_samples(out)
    plain, comet, muse = (results["results"][t] for t in tasks.split(","))
    assert not any(k.startswith("muse") for k in plain)  # plain regurg_mt reports COMET when configured
    assert not any(k.startswith("comet") for k in muse)
    for key in ("comet,none", "comet_qe,none"):
        assert plain[key] == comet[key], key
    for r in (comet, muse):  # the four corpus metrics: identical to the plain task's, and to sacrebleu
        for metric in CORPUS_METRICS:
            assert r[f"{metric},none"] == plain[f"{metric},none"], metric
    rows = samples["regurg_mt_comet_en-es"]
    src = [r["doc"]["source"] for r in rows]
    hyp = [r["filtered_resps"][0] for r in rows]
    ref = [r["doc"]["target"] for r in rows]
    for metric in CORPUS_METRICS:
        assert math.isclose(comet[f"{metric},none"], corpus_score(metric, hyp, ref), abs_tol=1e-9)
    expect = CometMetric(str(checkpoints["regression"]), cache=False).corpus_score(hyp, src, ref)
    assert math.isclose(comet["comet,none"], expect, abs_tol=1e-6) and comet["comet_stderr,none"] == "N/A"
    expect_qe = CometMetric(str(checkpoints["qe"]), cache=False).corpus_score(hyp, src)
    assert math.isclose(comet["comet_qe,none"], expect_qe, abs_tol=1e-6)
    assert -1.0 <= muse["muse_cos_src,none"] <= 1.0 and -1.0 <= muse["muse_cos_ref,none"] <= 1.0
    assert results["higher_is_better"]["regurg_mt_comet_en-es"]["ter"] is False
    assert results["configs"]["regurg_mt_comet_en-es"]["metadata"]["comet_model"] == str(checkpoints["regression"])

    from regurg_bench.metrics.report import neural_report, report_metrics

    report = neural_report(out, report_metrics(comet_model=str(checkpoints["regression"])))
    assert report["metrics"]["comet"]["test_only"] is True
    assert math.isclose(report["tasks"]["regurg_mt_comet_en-es"]["comet"], expect, abs_tol=1e-6)
    _strict_json(out / "neural_metrics.json")
    assert "comet" not in neural_report(out, report_metrics(), write=False)["metrics"]


def test_regurg_bench_eval_reports_comet_from_the_environment_variable(checkpoints, tiny_model_dir, tmp_path):
    cmd = [sys.executable, "-m", "regurg_bench.cli", "eval", "--model", "hf", "--model_args",
           f"pretrained={tiny_model_dir},dtype=float32", "--tasks", "regurg_mt_comet_es-en,regurg_mt_es-en",
           "--limit", str(LIMIT), "--batch_size", "4", "--output_path", str(tmp_path), "--gen_kwargs", "max_gen_toks=16"]
    env = {**os.environ, comet_mod.MODEL_ENV: str(checkpoints["regression"])}
    env.pop(comet_mod.QE_MODEL_ENV, None)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (path,) = tmp_path.rglob("results_*.json")
    results = _strict_json(path)
    r = results["results"]["regurg_mt_comet_es-en"]
    assert math.isfinite(r["comet,none"]) and "comet_qe,none" not in r
    # The plain task reports the same COMET; the unconfigured comet_qe is not even declared.
    assert results["results"]["regurg_mt_es-en"]["comet,none"] == r["comet,none"]
    for task in ("regurg_mt_es-en", "regurg_mt_comet_es-en"):
        assert set(results["higher_is_better"][task]) == {*CORPUS_METRICS, "comet"}
    assert "comet_qe" not in json.dumps(results["configs"]["regurg_mt_es-en"])


def test_plain_regurg_mt_reports_comet_only_when_configured(checkpoints, tiny_model_dir, tmp_path_factory):
    """`lm_eval --tasks regurg_mt_en-es`: COMET with a configured checkpoint, and without one no COMET
    anywhere in the results JSON or the samples (no value, no higher_is_better / metric_list entry, no
    hook source), strict JSON; BLEU/chrF/chrF++/TER identical either way."""
    cwd = tmp_path_factory.mktemp("cwd")

    def run(out: Path, env: dict) -> tuple[dict, dict]:
        proc = _lm_eval(["--model", "hf", "--model_args", f"pretrained={tiny_model_dir},dtype=float32",
                         "--tasks", "regurg_mt_en-es", "--limit", "3", "--device", "cpu", "--batch_size", "4",
                         "--log_samples", "--output_path", str(out), "--gen_kwargs", "max_gen_toks=16"],
                        cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return _results_and_samples(out)

    unset = {comet_mod.MODEL_ENV: "", comet_mod.QE_MODEL_ENV: ""}
    with_comet, samples = run(tmp_path_factory.mktemp("with"),
                              {**unset, comet_mod.MODEL_ENV: str(checkpoints["regression"])})
    r = with_comet["results"]["regurg_mt_en-es"]
    rows = samples["regurg_mt_en-es"]
    assert len(rows) == 3
    src = [x["doc"]["source"] for x in rows]
    hyp = [x["filtered_resps"][0] for x in rows]
    ref = [x["doc"]["target"] for x in rows]
    expect = CometMetric(str(checkpoints["regression"]), cache=False).corpus_score(hyp, src, ref)
    assert math.isclose(r["comet,none"], expect, abs_tol=1e-6) and "comet_qe,none" not in r
    assert r["comet_stderr,none"] == "N/A"
    assert with_comet["configs"]["regurg_mt_en-es"]["metadata"]["version"] == 1.3
    # Only the configured checkpoint's metric is declared; the unconfigured comet_qe is nowhere.
    assert with_comet["higher_is_better"]["regurg_mt_en-es"]["comet"] is True
    assert "comet_qe" not in json.dumps(with_comet)
    assert [m["metric"] for m in with_comet["configs"]["regurg_mt_en-es"]["metric_list"]] == \
        [*CORPUS_METRICS, "comet"]
    assert all("comet" in x["metrics"] for x in rows)

    out = tmp_path_factory.mktemp("without")
    without, no_samples = run(out, unset)  # _results_and_samples parses strictly (NaN refused)
    for path in [*out.rglob("results_*.json"), *out.rglob("samples_*.jsonl")]:  # the files as written
        assert "comet" not in path.read_text(encoding="utf-8").lower(), path
    assert "comet" not in json.dumps(without).lower() and "comet" not in json.dumps(no_samples).lower()
    plain = without["results"]["regurg_mt_en-es"]
    for metric in CORPUS_METRICS:  # unchanged by COMET, and equal to sacrebleu on the logged outputs
        assert plain[f"{metric},none"] == r[f"{metric},none"], metric
        assert math.isclose(r[f"{metric},none"], corpus_score(metric, hyp, ref), abs_tol=1e-9), metric
