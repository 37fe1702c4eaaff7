"""The regurg_mt tasks under the real lm-eval CLI, with metrics recomputed from the logged samples."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regurg_bench._lm_eval_hook import task_config_dir
from regurg_bench.evaluation.signatures import corpus_score, sacrebleu_signatures
from regurg_bench.evaluation.tasks import EMBEDDED_DIRECTIONS, task_name
from regurg_bench.metric_table import SACREBLEU_METRICS as CORPUS_METRICS

LIMIT = 6
pytestmark = pytest.mark.slow
#: No COMET checkpoint configured in these runs, whatever the developer's environment says.
NO_COMET_ENV = ("REGURG_BENCH_COMET_MODEL", "REGURG_BENCH_COMET_QE_MODEL")


def _lm_eval_cli() -> list[str]:
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or shutil.which("lm_eval")
    assert exe, "lm_eval console script not found: is lm-eval installed in this environment?"
    return [exe]


def _results(out: Path) -> tuple[dict, dict[str, list[dict]]]:
    (results_file,) = out.rglob("results_*.json")
    results = json.loads(results_file.read_text())
    samples = {}
    for path in out.rglob("samples_*.jsonl"):
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        samples[task] = [json.loads(line) for line in path.read_text().splitlines()]
    return results, samples


def _env_without_comet() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in NO_COMET_ENV}


def _strict_loads(text: str, what: str):
    def refuse(token):
        raise ValueError(f"non-strict JSON constant {token} in {what}")
    return json.loads(text, parse_constant=refuse)


def assert_no_comet_and_strict(out: Path) -> None:
    """Every results JSON and samples JSONL under ``out``: strict JSON, and no "comet" anywhere in it
    (no metric, no higher_is_better / metric_list entry, no hook source code), any letter case."""
    files = [*out.rglob("results_*.json"), *out.rglob("samples_*.jsonl")]
    assert any(f.name.startswith("results_") for f in files)
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "comet" not in text.lower(), (path, text[max(0, text.lower().find("comet") - 300):][:600])
        docs = ([_strict_loads(text, str(path))] if path.suffix == ".json"
                else [_strict_loads(line, str(path)) for line in text.splitlines()])
        for doc in docs:  # and re-serialised strictly: no NaN/Infinity hidden anywhere
            assert "comet" not in json.dumps(doc, allow_nan=False).lower(), path


@pytest.fixture(scope="module")
def lm_eval_out(tiny_model_dir, tmp_path_factory) -> Path:
    """One real `lm_eval` run on the regurg_mt group (no --include_path: the .pth hook registers us),
    with no COMET checkpoint configured."""
    out = tmp_path_factory.mktemp("lm_eval_out")
    cmd = [*_lm_eval_cli(), "--model", "hf", "--model_args",
           f"pretrained={tiny_model_dir},dtype=float32", "--tasks", "regurg_mt", "--limit", str(LIMIT),
           "--device", "cpu", "--batch_size", "4", "--log_samples", "--output_path", str(out),
           "--gen_kwargs", "max_gen_toks=24"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path_factory.mktemp("cwd"),
                          env=_env_without_comet())
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def lm_eval_run(lm_eval_out):
    return _results(lm_eval_out)


def test_lm_eval_runs_every_direction(lm_eval_run):
    results, samples = lm_eval_run
    expected = {task_name(d) for d in EMBEDDED_DIRECTIONS}
    assert expected <= set(results["results"])
    assert set(samples) == expected
    for task in expected:
        assert len(samples[task]) == LIMIT
        assert results["configs"][task]["metadata"]["version"] == 1.3
        assert results["versions"][task] == 1.3
    assert str(results["versions"]["regurg_mt"]) == "1.3"  # lm-eval records group versions as text


def test_results_without_a_checkpoint_never_mention_the_neural_metric(lm_eval_out, lm_eval_run):
    """No COMET checkpoint configured: the results JSON (as written and as parsed) and the samples have
    no COMET metric, key, config entry or value at all, and are strict JSON."""
    assert_no_comet_and_strict(lm_eval_out)
    results, samples = lm_eval_run
    assert "comet" not in json.dumps(results, allow_nan=False).lower()
    assert "comet" not in json.dumps(samples, allow_nan=False).lower()
    metrics = {"bleu", "chrf", "chrf++", "ter"}
    for task in (task_name(d) for d in EMBEDDED_DIRECTIONS):
        assert set(results["higher_is_better"][task]) == metrics
        assert [m["metric"] for m in results["configs"][task]["metric_list"]] == list(CORPUS_METRICS)
        assert {k.split(",")[0] for k in results["results"][task] if "," in k} == \
            metrics | {f"{m}_stderr" for m in metrics}
        assert all(set(row["metrics"]) == metrics for row in samples[task])
    assert set(results["higher_is_better"]["regurg_mt"]) == metrics


def test_metrics_equal_sacrebleu_recomputed_from_logged_samples(lm_eval_run):
    results, samples = lm_eval_run
    for task, rows in samples.items():
        hyps = [row["filtered_resps"][0] for row in rows]
        refs = [row["target"] for row in rows]
        # The logged target is the human reference from the corpus document.
        assert refs == [row["doc"]["target"] for row in rows]
        for metric in CORPUS_METRICS:
            reported = results["results"][task][f"{metric},none"]
            assert math.isclose(reported, corpus_score(metric, hyps, refs), rel_tol=1e-9, abs_tol=1e-9), \
                (task, metric)


def test_ter_is_lower_is_better_and_signatures_recorded(lm_eval_run):
    results, _ = lm_eval_run
    for task in (task_name(d) for d in EMBEDDED_DIRECTIONS):
        assert results["higher_is_better"][task]["ter"] is False
        assert results["higher_is_better"][task]["bleu"] is True
        assert results["configs"][task]["metadata"]["sacrebleu_signatures"] == sacrebleu_signatures()
    assert "tok:13a" in sacrebleu_signatures()["bleu"]
    assert "nw:2" in sacrebleu_signatures()["chrf++"]


def test_prompt_is_the_documented_template(lm_eval_run):
    _, samples = lm_eval_run
    row = samples[task_name("en-es")][0]
    prompt = row["arguments"]["gen_args_0"]["arg_0"]
    assert prompt == f"English: {row['doc']['source']}\nSpanish:"
    assert row["arguments"]["gen_args_0"]["arg_1"]["until"] == ["\n"]


def test_regurg_bench_eval_gives_identical_metrics(lm_eval_run, tiny_model_dir, tmp_path):
    results, _ = lm_eval_run
    cmd = [sys.executable, "-m", "regurg_bench.cli", "eval", "--model", "hf", "--model_args",
           f"pretrained={tiny_model_dir},dtype=float32", "--tasks", "regurg_mt", "--limit", str(LIMIT),
           "--batch_size", "4", "--output_path", str(tmp_path), "--gen_kwargs", "max_gen_toks=24",
           "--log_samples"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env=_env_without_comet())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_no_comet_and_strict(tmp_path)  # our results block included
    ours, _ = _results(tmp_path)
    for task in (task_name(d) for d in EMBEDDED_DIRECTIONS):
        for metric in CORPUS_METRICS:
            assert ours["results"][task][f"{metric},none"] == results["results"][task][f"{metric},none"]
    block = ours["regurg_bench"]
    assert block["device"] == "cpu"
    assert block["sacrebleu_signatures"] == sacrebleu_signatures()
    published = json.loads((task_config_dir() / "regurg_mt" / "test_set_fingerprints.json").read_text())
    assert block["test_set_fingerprints"] == published


def test_custom_corpus_through_metadata(tiny_model_dir, tmp_path):
    """The documented way to point the same template at a user's own test set."""
    corpus = tmp_path / "my test set.tsv"
    rows = ["id\tsource\ttarget", "s1\tDer Hund schläft.\tThe dog sleeps.",
            "s2\tEs regnet heute.\tIt is raining today.", "s3\tIch lese ein Buch.\tI am reading a book."]
    corpus.write_text("\n".join(rows) + "\n", encoding="utf-8")
    metadata = json.dumps({"corpus": str(corpus), "src_lang": "de", "tgt_lang": "en"})
    out = tmp_path / "out"
    cmd = [*_lm_eval_cli(), "--model", "hf", "--model_args", f"pretrained={tiny_model_dir}",
           "--tasks", "regurg_mt_custom", "--metadata", metadata, "--device", "cpu", "--log_samples",
           "--output_path", str(out), "--gen_kwargs", "max_gen_toks=8"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path,
                          env=_env_without_comet())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert_no_comet_and_strict(out)
    results, samples = _results(out)
    rows_logged = samples["regurg_mt_custom"]
    assert [r["doc"]["id"] for r in rows_logged] == ["s1", "s2", "s3"]
    assert rows_logged[0]["arguments"]["gen_args_0"]["arg_0"] == "German: Der Hund schläft.\nEnglish:"
    hyps = [r["filtered_resps"][0] for r in rows_logged]
    refs = [r["doc"]["target"] for r in rows_logged]
    assert math.isclose(results["results"]["regurg_mt_custom"]["chrf,none"], corpus_score("chrf", hyps, refs))


def test_custom_task_without_metadata_names_what_is_missing(tiny_model_dir, tmp_path):
    cmd = [*_lm_eval_cli(), "--model", "hf", "--model_args", f"pretrained={tiny_model_dir}",
           "--tasks", "regurg_mt_custom", "--device", "cpu", "--limit", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode != 0
    assert "needs --metadata with 'corpus', 'src_lang' and 'tgt_lang'" in proc.stderr
