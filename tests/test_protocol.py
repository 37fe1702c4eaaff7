"""``regurg-bench run``: config validation, and a tiny real end-to-end run (scripted generators, the
``scratch:test`` preset, 5 test sentences) whose report must equal what the saved lm-eval samples give."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest

from regurg_bench.builders.config import ConfigError
from regurg_bench.evaluation.signatures import corpus_score
from regurg_bench.protocol.config import default_protocol_config, load_protocol_config
from regurg_bench.protocol.report import load_samples
from regurg_bench.protocol.run import run_protocol
from regurg_bench.scoring import paired_bootstrap
from regurg_bench.scoring.matrix import matrix_effects

TINY = (Path(__file__).parent / "data" / "tiny_protocol.yaml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, needle", [
    ("nme: x\n", "nme"),
    ("eval: {backend: tgi}\n", "eval.backend"),
    ("eval: {limit: 0}\n", "eval.limit"),
    ("train: {max_stepz: 3}\n", "max_stepz"),
    ("train: {seed: 3}\n", "set by the protocol"),
    ("build: {size: -1}\n", "build.size"),
    ("mitigations: {quality: {top_fraction: 2}}\n", "mitigations.quality.top_fraction"),
    ("seeds: [0, 0]\n", "seeds"),
])
def test_bad_configs_name_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_protocol_config(_write(tmp_path, text))


def test_default_config_and_overrides():
    cfg = default_protocol_config()
    assert load_protocol_config(None) == cfg
    assert list(cfg.build.generators) == ["apertium", "self"]
    assert cfg.build.generators["self"].options["checkpoint"] == cfg.train["base_model"] == "bible-base-en-es"
    assert len(cfg.seeds) >= 3 and cfg.train["precision"] == "fp32" and cfg.eval.max_gen_toks == 256
    assert cfg.resolved()["train_precision"] == "fp32" and "bible-base-en-es" in cfg.resolved()["base_model_recipes"]
    changed = cfg.with_overrides(**{"train.base_model": "scratch:test"})
    assert changed.train["base_model"] == "scratch:test" and changed.config_hash() != cfg.config_hash()
    with pytest.raises(ConfigError, match="eval.backend"):
        cfg.with_overrides(**{"eval.backend": "nope"})


@pytest.fixture(scope="module")
def tiny_run(tiny_protocol_run):
    """The session's one tiny run (tests/conftest.py), shared with tests/test_protocol_compare.py."""
    return tiny_protocol_run


def test_matrix_and_files(tiny_run):
    _, out, results, _ = tiny_run
    for name in ("results.json", "report.md", "report.html", "scores.png"):
        assert (out / name).is_file(), name
    conds = set(results["conditions"])
    assert {"real", "regurg_scripted", "regurg_scripted2", "fraction_real_050", "mix_scripted_050",
            "m1_order_scripted", "m1_topk_scripted", "m2_multigen", "m3_detector_scripted",
            "m4_unlearn_scripted"} <= conds
    assert {"ladder_real_50", "ladder_regurg_scripted_50", "ladder_regurg_scripted2_50"} <= conds
    assert set(results["plots"]) >= {"scores.png", "sizes.png", "diagnostics.png"}
    kinds = {c["claim"] for c in results["claims"]}
    assert {"degradation", "ladder", "fraction", "errors", "diversity", "m1_order", "m1_topk", "m2_multigen",
            "m3_detector", "m4_unlearn"} <= kinds
    m2_rows = sorted(c["condition"] for c in results["claims"] if c["claim"] == "m2_multigen")
    assert m2_rows == ["m2_multigen vs regurg_scripted", "m2_multigen vs regurg_scripted2"]  # one row per baseline
    saved = json.loads((out / "results.json").read_text())  # strict JSON: no NaN/Infinity
    assert saved["config_hash"] == results["config_hash"]
    assert saved["sacrebleu_signatures"]["bleu"].startswith("nrefs:1")
    assert 0.0 <= saved["mitigation_data"]["m3_scripted"]["auroc"] <= 1.0
    assert saved["students"]["m4_unlearn_scripted-s0"]["base_student"] == "regurg_scripted-s0"


def test_report_numbers_equal_recomputed_from_saved_samples(tiny_run):
    cfg, out, _, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    task = results["tasks"][0]
    hyps: dict[str, list[list[str]]] = {}
    refs = None
    students = sorted(results["students"].values(), key=lambda s: (s["condition"], s["seed"]))
    for s in students:
        _, h, r = load_samples(out, s["samples"][task])
        refs = refs or r
        assert r == refs
        hyps.setdefault(s["condition"], []).append(h)
        seed_index = results["conditions"][s["condition"]]["seeds"].index(s["seed"])
        lm_eval = json.loads((out / s["results_file"]).read_text())["results"][task]
        for metric in ("bleu", "chrf", "ter"):
            recomputed = corpus_score(metric, h, r)
            row = results["scores"][task][s["condition"]][metric]
            assert math.isclose(row["per_seed"][seed_index], recomputed, abs_tol=1e-9)
            assert math.isclose(lm_eval[f"{metric},none"], recomputed, abs_tol=1e-9)
    assert all(len(v) == len(cfg.seeds) == 2 for v in hyps.values())
    sc = results["scoring"]
    gens = list(cfg.build.generators)
    for metric in ("bleu", "chrf", "ter"):
        # the condition score is the mean over seeds; every effect is recomputed from the samples alone
        for cond, per in hyps.items():
            mean = sum(corpus_score(metric, h, refs) for h in per) / len(per)
            assert math.isclose(results["scores"][task][cond][metric]["score"], mean, abs_tol=1e-9)
        bs = paired_bootstrap(metric, hyps, refs, n=sc["resamples"], seed=sc["seed"])
        fx = matrix_effects(bs, results["conditions"], gens, sc["level"])
        assert fx.degradation["regurg_scripted"].to_dict() == results["degradation"][task]["regurg_scripted"][metric]
        assert (fx.recovery["m1_topk_scripted"]["regurg_scripted"].to_dict()
                == results["recovery"][task]["m1_topk_scripted"]["regurg_scripted"][metric])
        assert (fx.differences["fraction_real_050"]["regurg_scripted"].to_dict()
                == results["differences"][task]["fraction_real_050"]["regurg_scripted"][metric])
        row = results["scores"][task]["real"][metric]
        assert f"{row['score']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in (out / "report.md").read_text()
    assert results["checks"][task]["equal_to_lm_eval"]


def test_rerun_is_a_noop_and_resume_redoes_only_what_is_missing(tiny_run):
    cfg, out, _, _ = tiny_run
    before = (out / "results.json").stat().st_mtime_ns
    said: list[str] = []
    again = run_protocol(cfg, out, say=said.append)  # its speed: benchmarks/resume_speed.py
    assert again["up_to_date"] and "nothing to do" in said[0]
    assert (out / "results.json").stat().st_mtime_ns == before
    # an interrupted run: the last evaluation and the run marker are missing
    (out / "run_done.json").unlink()
    last_eval = sorted((out / "evals").glob("m4_unlearn_scripted-s0-*"))[0]
    (last_eval / "done.json").unlink()
    said.clear()
    resumed = run_protocol(cfg, out, say=said.append)
    trains = [m for m in said if m.startswith("[train")]
    evals = [m for m in said if m.startswith("[eval")]
    assert trains and all("cached" in m for m in trains)
    assert [m for m in evals if "evaluated" in m] == [m for m in evals if "m4_unlearn_scripted-s0:" in m]
    assert resumed["scores"] == json.loads((out / "results.json").read_text())["scores"]


def test_dry_run_runs_nothing(tmp_path):
    cfg = load_protocol_config(_write(tmp_path, TINY))
    said: list[str] = []
    plan = run_protocol(cfg, tmp_path / "dry", dry_run=True, say=said.append)
    assert plan["dry_run"] and "m2_multigen-s0" in plan["students"]
    assert not (tmp_path / "dry").exists()


def _keys(model_cls, prefix=""):
    from pydantic import BaseModel

    for name, f in model_cls.model_fields.items():
        yield prefix + name
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from _keys(ann, prefix + name + ".")


def test_example_config_documents_every_key_and_loads():
    import yaml

    from regurg_bench.protocol.config import ProtocolConfig

    path = Path(__file__).parents[1] / "regurg_bench" / "protocol" / "example_config.yaml"
    load_protocol_config(path)
    raw = yaml.safe_load(path.read_text())

    def present(dotted):
        node = raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    missing = [k for k in _keys(ProtocolConfig) if not present(k)]
    assert not missing, f"example_config.yaml does not document {missing}"


def test_presets_load_and_the_paper_plan_prints(tmp_path):
    from regurg_bench.protocol.config import preset_names, preset_path

    assert {"default", "m2-offline", "paper"} <= set(preset_names())
    paper = load_protocol_config(preset_path("paper"))
    assert paper.eval.backend == "vllm" and paper.train["method"] == "lora" and paper.build.ladder.step == 1000
    said: list[str] = []
    plan = run_protocol(paper, tmp_path / "paper", dry_run=True, say=said.append)
    assert "ladder_regurg_llama_1000-s2" in plan["students"] and "m2_multigen-s0" in plan["students"]
    assert not (tmp_path / "paper").exists()
    m2 = run_protocol(load_protocol_config(preset_path("m2-offline")), tmp_path / "m2", dry_run=True, say=said.append)
    assert sorted(m2["students"]) == ["m2_multigen-s0", "real-s0", "regurg_apertium-s0", "regurg_apertium_rt_it-s0"]
    with pytest.raises(ConfigError, match="unknown preset"):
        preset_path("nope")


def test_kill_9_mid_run_then_rerun_gives_identical_results(tiny_run, tmp_path):
    """A real SIGKILL while students are being trained; the re-run resumes and matches a clean run."""
    import os
    import signal
    import subprocess
    import sys

    _, clean_out, _, _ = tiny_run
    # from disk: an earlier test re-ran the last evaluation, which names its samples file anew
    clean = json.loads((clean_out / "results.json").read_text(encoding="utf-8"))
    cfg_path = _write(tmp_path, TINY)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "regurg_bench.cli", "run", str(cfg_path), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("students/*/training_card.json"))) >= 3:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "run_done.json").exists()
    said: list[str] = []
    run_protocol(load_protocol_config(cfg_path), out, say=said.append)
    resumed = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert any("cached" in m for m in said if m.startswith("[train"))
    # the whole results.json, with two seeds (their bootstrap draws must not depend on the order in
    # which a resumed run finds its conditions), apart from the wall times
    # and apart from the names lm-eval gives its output files (the run folder's path and a timestamp)
    def strip(r: dict) -> dict:
        students = {n: {k: v for k, v in s.items() if k not in ("results_file", "samples")}
                    for n, s in r["students"].items()}
        return {k: v for k, v in r.items() if k not in ("timings_s", "up_to_date")} | {"students": students}

    assert strip(resumed) == strip(clean)
    for name, s in clean["students"].items():  # the logged samples themselves are byte-identical
        task = clean["tasks"][0]
        assert (out / resumed["students"][name]["samples"][task]).read_bytes() == \
            (clean_out / s["samples"][task]).read_bytes()
    assert len(clean["conditions"]["real"]["seeds"]) == 2


def test_every_verdict_is_robust_fragile_or_inconclusive_and_run_ends_with_a_table(tiny_run):
    """Each claim x metric carries robustness, the seeds agreeing and the distinct replicates; a finished run's
    `regurg-bench run` ends with the rich summary table (not a JSON dump) and the report's path."""
    from typer.testing import CliRunner

    from regurg_bench.cli import app
    from regurg_bench.protocol.report import robustness_counts
    from regurg_bench.results import RunResults

    cfg, out, results, _ = tiny_run
    decided = 0
    for c in results["claims"]:
        for v in c["per_metric"].values():
            assert v["robustness"] in ("robust", "fragile", "inconclusive")
            assert (v["robustness"] == "inconclusive") == (v["verdict"] not in ("holds", "contradicted"))
            assert 1 <= v["effective_seeds"] <= v["n_seeds"] and 0 <= v["seeds_agreeing"] <= v["n_seeds"]
            decided += v["robustness"] != "inconclusive"
    assert all("effective_seeds" in info for info in results["conditions"].values())
    res = CliRunner().invoke(app, ["run", str(_write(out.parent, TINY)), "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "robustness" in res.output and "seeds agree" in res.output and "report.md" in res.output
    assert not res.output.lstrip().startswith("{")
    counts = robustness_counts(RunResults.model_validate(results))
    assert f"{counts['robust']} robust, {counts['fragile']} fragile, {counts['inconclusive']} inconclusive" \
        in " ".join(res.output.split())
    assert counts["robust"] + counts["fragile"] == decided


def test_report_command_rerenders_and_prints_the_headline(tiny_run):
    from typer.testing import CliRunner

    from regurg_bench.cli import app

    _, out, _, _ = tiny_run
    results = json.loads((out / "results.json").read_text())
    task = results["tasks"][0]
    row = results["scores"][task]["real"]["bleu"]
    res = CliRunner().invoke(app, ["report", str(out), "--headline"])
    assert res.exit_code == 0, res.output
    assert f"| real | {row['score']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]" in res.output
    assert "| degradation | regurg_scripted |" in res.output
    (out / "report.md").unlink()
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0 and (out / "report.md").is_file()
    missing = CliRunner().invoke(app, ["report", str(out / "nope")])
    assert missing.exit_code == 2 and "finished run folder" in missing.output


def test_report_escapes_the_run_name():
    """The run name is user text: report.md shows it literally (no raw HTML, no link), report.html escapes it."""
    from regurg_bench.protocol.report import to_html, to_markdown

    name = "<img src=x onerror=alert(1)> [click](javascript:x) *run*"
    md = to_markdown([("h", 1, "regurg-bench protocol report: ", name)])
    assert "<img" not in md and "](javascript" not in md and "*run*" not in md
    assert md.startswith("# regurg-bench protocol report: &lt;img src=x onerror=alert\\(1\\)&gt; \\[click\\]")
    page = to_html([("h", 1, "regurg-bench protocol report: ", name)], name)
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def _edit_sample(samples: Path, index: int, hypothesis: str) -> None:
    """Replace the logged hypothesis of the ``index``-th line of an lm-eval samples file."""
    lines = samples.read_text(encoding="utf-8").split("\n")
    row = json.loads(lines[index])
    row["filtered_resps"] = [hypothesis]
    lines[index] = json.dumps(row, ensure_ascii=False)
    samples.write_text("\n".join(lines), encoding="utf-8")


def test_verify_rerun_reproduces_the_logged_samples_byte_for_byte(tiny_run, tmp_path):
    """`regurg-bench verify RUN --rerun K` re-trains and re-evaluates students from the recorded config and
    seed (CPU training is deterministic) and compares their logged samples with the recorded ones."""
    import shutil

    from typer.testing import CliRunner

    from regurg_bench.cli import app
    from regurg_bench.protocol.reproduce import EXACT, FAILED, WITHIN_NOISE, reproduce

    _cfg, out, _, _ = tiny_run
    # from disk: an earlier test re-ran the last evaluation, which names its samples file anew
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    res = CliRunner().invoke(app, ["verify", str(out), "--rerun", "1", "--seed", "3"])
    assert res.exit_code == 0, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["identical"] is True and line["reproduced"] is True and line["failures"] == []
    assert set(line["outcomes"].values()) == {EXACT} and set(line["weights"].values()) == {"identical"}
    # M4 continues its REGURG student: that one is re-trained too, then M4 from it
    m4 = next(n for n in results["students"] if n.startswith("m4_"))
    said: list[str] = []
    report = reproduce(out, students=[m4], say=said.append)
    assert [r.student for r in report] == [m4] and report[0].identical, said
    assert report[0].outcome == EXACT and report[0].weights == "identical"
    task = next(iter(results["tasks"]))
    copy = tmp_path / "run"
    shutil.copytree(out, copy, symlinks=True)
    samples = copy / results["students"][m4]["samples"][task]
    pristine = samples.read_text(encoding="utf-8")
    # another machine's noise: one document's output is the other seed's output for it (not byte-identical,
    # scores moved, within the tolerance of the run's seed spread). The byte-for-byte verify failed here.
    other = load_samples(copy, results["students"][m4.replace("-s0", "-s1")]["samples"][task])[1]
    _edit_sample(samples, 4, other[4])
    report = reproduce(copy, students=[m4], say=said.append, eval_only=True)
    assert report[0].outcome == WITHIN_NOISE, said[-1]
    assert "line 5 (doc_id" in report[0].detail and "within noise" in said[-1]
    rows = report[0].scores
    assert {r["metric"] for r in rows} == {"bleu", "chrf", "ter"} and all(r["within_noise"] for r in rows)
    assert any(r["difference"] != 0 for r in rows)
    assert all(abs(r["difference"]) <= r["tolerance"]["value"] for r in rows)
    # a recorded sample replaced by its reference: far outside the tolerance, a failure naming student, task,
    # metric, the difference and the tolerance
    samples.write_text(pristine, encoding="utf-8")
    row = json.loads(pristine.split("\n")[1])
    _edit_sample(samples, 1, row["target"])
    report = reproduce(copy, students=[m4], say=said.append, eval_only=True)
    assert report[0].outcome == FAILED and not report[0].identical and "line 2 (doc_id" in report[0].detail
    assert f"{task}, bleu: recorded" in report[0].detail and "outside the tolerance ±" in report[0].detail
    assert said[-1].startswith(f"{m4}: FAILED")
    # the CLI: exit 1, and the JSON line names what failed (the student --seed picks is the edited one)
    seed = next(k for k in range(100) if random.Random(k).sample(sorted(results["students"]), 1) == [m4])
    res = CliRunner().invoke(app, ["verify", str(copy), "--rerun", "1", "--seed", str(seed), "--eval-only"])
    assert res.exit_code == 1, res.output
    line = json.loads(res.output.strip().splitlines()[-1])
    assert line["reproduced"] is False and line["outcomes"] == {m4: FAILED}
    failed = {f["metric"]: f for f in line["failures"]}
    assert failed["bleu"]["student"] == m4 and failed["bleu"]["task"] == task
    assert abs(failed["bleu"]["difference"]) > failed["bleu"]["tolerance"]["value"] > 0


# ------------------------------------------------------------------------- steps, executors, plugins
PINNED = json.loads((Path(__file__).parent / "data" / "tiny_protocol_pinned.json").read_text(encoding="utf-8"))


def _comparable(r: dict) -> dict:
    """results.json less what may differ between two runs of the same config: wall times, lm-eval's file
    names (path and timestamp), the executed-steps list's cached flags (none are kept) and ``resources``."""
    students = {n: {k: v for k, v in s.items() if k not in ("results_file", "samples")} for n, s in r["students"].items()}
    config = {k: v for k, v in r["config"].items() if k != "resources"}
    return {k: v for k, v in r.items() if k not in ("timings_s", "up_to_date")} | {"students": students, "config": config}


def test_tiny_protocol_keeps_the_numbers_pinned_before_the_step_refactor(tiny_run):
    """The same students (keys: every input file and setting), the same mitigation data, the same condition
    order, and the scoring of the pinned hypotheses gives the pinned numbers and verdicts."""
    from regurg_bench.scoring.matrix import score_metric

    cfg, _, results, _ = tiny_run
    assert results["config_hash"] == PINNED["config_hash"]  # `resources` stays out of the hash
    assert {n: s["key"] for n, s in results["students"].items()} == PINNED["students"]
    assert results["condition_order"] == PINNED["condition_order"]
    assert results["conditions"] == PINNED["conditions"]
    for name, record in PINNED["mitigation_data"].items():
        got = results["mitigation_data"][name]
        assert set(got) == set(record)
        for k, v in record.items():
            assert got[k] == pytest.approx(v, rel=1e-6) if isinstance(v, float) else got[k] == v, (name, k)
    task = results["tasks"][0]
    hyps = {c: [PINNED["hypotheses"][task][f"{c}-s{seed}"] for seed in info["seeds"]]
            for c, info in PINNED["conditions"].items()}
    gens = list(cfg.build.generators)
    for metric in cfg.scoring.metrics:
        ms = score_metric(metric, {c: hyps[c] for c in PINNED["condition_order"]}, PINNED["references"],
                          PINNED["conditions"], gens, resamples=cfg.scoring.resamples, seed=cfg.scoring.seed,
                          level=cfg.scoring.level)
        for cond, row in ms.rows.items():
            pinned = PINNED["scores"][task][cond][metric]
            assert {k: pinned[k] for k in row} == row, (cond, metric)
        for cond, e in ms.effects.degradation.items():
            assert e.to_dict() == PINNED["degradation"][task][cond][metric]
        for cond, bases in ms.effects.recovery.items():
            for base, e in bases.items():
                assert e.to_dict() == PINNED["recovery"][task][cond][base][metric]
    # on this run's own hypotheses the claims come out as pinned wherever the hypotheses are the pinned ones
    # from disk: an earlier test re-ran an evaluation, which names its samples file anew
    on_disk = json.loads((tiny_run[1] / "results.json").read_text(encoding="utf-8"))
    same = all(PINNED["hypotheses"][task][n] == load_samples(tiny_run[1], on_disk["students"][n]["samples"][task])[1]
               for n in PINNED["students"])
    if same:
        assert [(c["claim"], c["condition"], {m: v["verdict"] for m, v in c["per_metric"].items()})
                for c in results["claims"]] == [(c["claim"], c["condition"], c["verdicts"]) for c in PINNED["claims"]]


def test_dry_run_lists_exactly_the_steps_a_run_executes(tiny_run, tmp_path):
    cfg, _, results, _ = tiny_run
    plan = run_protocol(cfg, tmp_path / "dry", dry_run=True, say=lambda _m: None)
    assert plan["steps"] == results["steps"]
    assert plan["students"] == list(results["students"])
    assert {"build", "diagnose", "heldout", "data:m1_scripted", "data:m2", "data:m3_scripted",
            "data:m4_scripted", "score", "report"} <= set(plan["steps"])


def test_ray_executor_gives_the_local_numbers(tiny_run, tmp_path):
    """A real local Ray cluster (2 CPUs), every student's training and evaluation a Ray task."""
    import ray  # required: `.ci/run` installs the `ray` extra, so a missing Ray fails here

    cfg, _, local, _ = tiny_run
    said: list[str] = []
    try:
        results = run_protocol(cfg, tmp_path / "ray", say=said.append, executor="ray", num_cpus=2)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    local = json.loads((tiny_run[1] / "results.json").read_text(encoding="utf-8"))
    # The numbers do not depend on the executor; the bits of a few students' weights do: a Ray task trains
    # with its `resources.cpus` threads (1), the local executor with torch's default (2 here), and a sum over
    # another number of threads rounds differently (~1e-8; 3 of 26 students, not one output changed).
    assert _comparable(results) | {"fingerprints": None} == _comparable(local) | {"fingerprints": None}
    assert set(results["fingerprints"]["students"]) == set(local["fingerprints"]["students"])
    assert sum(m.startswith("[train") for m in said) == len(local["students"])


def test_worker_processes_give_the_one_process_numbers_bit_for_bit(tiny_run, tmp_path):
    """--workers 2: every student trained and evaluated on two spawned worker processes, side by side; every
    score, verdict, weight fingerprint and output is the one-process run's (each step pins its threads)."""
    cfg, _, _, _ = tiny_run
    said: list[str] = []
    results = run_protocol(cfg, tmp_path / "workers", say=said.append, workers=2)
    local = json.loads((tiny_run[1] / "results.json").read_text(encoding="utf-8"))
    assert _comparable(results) == _comparable(local)
    assert any("training and evaluation on 2 worker processes" in m for m in said), said
    assert sum(m.startswith("[eval") and ": evaluated" in m for m in said) == len(local["students"])


def test_two_concurrent_runs_on_one_folder_train_each_student_once(tiny_run, tmp_path):
    """Two `regurg-bench run` processes on one folder at once: one set of students, the single run's numbers."""
    import subprocess
    import sys

    cfg_path = _write(tmp_path, TINY)
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "regurg_bench.cli", "run", str(cfg_path), "--out", str(out), "--no-progress"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    logs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    single = json.loads((tiny_run[1] / "results.json").read_text(encoding="utf-8"))
    shared = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert _comparable(shared) == _comparable(single)
    trained = sorted(p.name for p in (out / "students").iterdir() if p.is_dir())
    assert trained == sorted(Path(s["model_id"]).name for s in single["students"].values())
    assert sorted(p.name for p in (out / "evals").iterdir() if p.is_dir()) == sorted(
        Path(s["samples"][single["tasks"][0]]).parts[1] for s in single["students"].values())
    # between them the two processes trained every student exactly once
    trained_msgs = [line for log in logs for line in log.splitlines() if line.startswith("[train") and ": trained" in line]
    assert len(trained_msgs) == len(single["students"]), logs


def test_a_step_runs_once_when_two_workers_race(tmp_path):
    """The lock per step folder: two threads execute the same step; one computes, the other reads its marker."""
    import threading

    from regurg_bench.protocol.steps import cached_data_step, execute

    calls = []

    def make(folder: Path) -> dict:
        calls.append(1)
        time.sleep(0.5)
        (folder / "out.txt").write_text("x")
        return {"n": len(calls)}

    step = cached_data_step("data:x", tmp_path / "derived" / "x-123", make)
    outcomes = []
    threads = [threading.Thread(target=lambda: outcomes.append(execute(step))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(o.cached for o in outcomes) == [False, True]
    assert all(o.record["n"] == 1 for o in outcomes)


def test_mitigations_come_from_the_registry():
    from regurg_bench.protocol.config import ProtocolConfig
    from regurg_bench.protocol.mitigations import (
        MITIGATIONS,
        all_mitigations,
        get_mitigation,
        mitigation_claims,
    )
    from regurg_bench.protocol.report import CLAIM_TEXT

    assert [m.label for m in all_mitigations()] == ["M1", "M2", "M3", "M4"]
    assert set(mitigation_claims()) == {"m1_order", "m1_topk", "m2_multigen", "m3_detector", "m4_unlearn"}
    assert set(mitigation_claims()) <= set(CLAIM_TEXT)
    fields = set(ProtocolConfig.model_fields["mitigations"].annotation.model_fields)
    assert fields == {"generators"} | set(MITIGATIONS)
    with pytest.raises(KeyError, match="qualty.*quality"):
        get_mitigation("qualty")


def test_evaluation_is_quiet_on_the_terminal_and_logged_in_the_run_log(tiny_run, tmp_path):
    """lm-eval's task-indexing warning (about ``max_seq_lengths``) and its progress bars stay off the
    terminal of `regurg-bench run` (one bar: the run's) and land in the run's log file."""
    import shutil
    import subprocess
    import sys

    _, out, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy, symlinks=True, ignore=shutil.ignore_patterns("*.lock"))
    (copy / "run_done.json").unlink()
    (copy / "run.log").unlink(missing_ok=True)
    shutil.rmtree(next(copy.glob("evals/real-s0-*")))  # one student to evaluate again, through lm-eval
    proc = subprocess.run([sys.executable, "-m", "regurg_bench.cli", "run", str(_write(tmp_path, TINY)), "--out",
                           str(copy)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    terminal = proc.stdout + proc.stderr
    assert "evaluated" in terminal and "regurg-bench run:" in terminal  # the run's messages and its bar
    for noise in ("max_seq_lengths", "Running generate_until requests", "Custom kwargs"):
        assert noise not in terminal, noise
    log = (copy / "run.log").read_text(encoding="utf-8")
    assert "max_seq_lengths" in log and "real-s0: evaluated" in log
