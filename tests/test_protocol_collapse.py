"""Degradation across generations (``collapse:``): a tiny real run (scratch:test students, 2 generations,
2 seeds, 5 test sentences) whose chains, training files, scores and resume behaviour are checked."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest

from regurg_bench.builders.config import ConfigError
from regurg_bench.corpora.lines import read_json_objects
from regurg_bench.protocol.collapse import GEN0, condition, model_sha
from regurg_bench.protocol.config import default_protocol_config, load_protocol_config
from regurg_bench.protocol.run import run_protocol

TINY = (Path(__file__).parent / "data" / "tiny_collapse.yaml").read_text(encoding="utf-8")
MODES = ("replace", "accumulate", "accumulate_equal")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------ config
def test_configs_without_the_section_keep_their_hash():
    """The section is None by default and then left out of the hash: published config hashes stay valid."""
    cfg = default_protocol_config()
    assert cfg.collapse is None
    # `resources` (where, not what) is never hashed either
    config = {k: v for k, v in cfg.model_dump(mode="json").items() if k not in ("collapse", "resources")}
    assert config["eval"].pop("lora") == "merged"  # eval.lora's default is left out of the hash likewise
    body = {"config": config, "resolved": cfg.resolved()}
    old = "sha256:" + hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert cfg.config_hash() == old
    with_section = cfg.with_overrides(**{"collapse": {"generations": 2}})
    assert with_section.collapse.generations == 2 and with_section.config_hash() != old


@pytest.mark.parametrize("text, needle", [
    ("collapse: {generations: 0}\n", "collapse.generations"),
    ("collapse: {modes: [replace, replace]}\n", "collapse.modes"),
    ("collapse: {modes: [grow]}\n", "collapse.modes"),
    ("collapse: {diagnostics: [nope]}\n", "collapse.diagnostics"),
    ("collapse: {tail_max_count: 5, head_min_count: 3}\n", "head_min_count"),
    ("collapse: {generationz: 2}\n", "generationz"),
])
def test_bad_collapse_configs_name_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_protocol_config(_write(tmp_path, text))


def test_collapse_preset_loads():
    from regurg_bench.protocol.config import preset_path

    cfg = load_protocol_config(preset_path("collapse"))
    assert cfg.collapse is not None and cfg.collapse.generations == 3
    assert list(cfg.collapse.modes) == list(MODES) and cfg.train["base_model"] == "bible-base-en-es"


# --------------------------------------------------------------------------------------- tiny run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collapse")
    cfg = load_protocol_config(_write(tmp, TINY))
    out = tmp / "run"
    messages: list[str] = []
    results = run_protocol(cfg, out, say=messages.append)
    return cfg, out, results, messages


def _student_dir(out: Path, section: dict, name: str) -> Path:
    return out / section["students"][name]["model_id"]


def test_generation_k_plus_1_targets_are_the_generation_k_students_outputs(tiny_run):
    """The fingerprints chain: each generation's targets name (and hash) the student that wrote them, and
    decoding the sources again with that student gives exactly those targets."""
    from regurg_bench.generation.base import build_generator

    cfg, out, results, _ = tiny_run
    c = results["collapse"]
    G = c["generations"]
    real = {r["id"]: r for r in read_json_objects(out / "splits" / "real.jsonl")}
    for seed in cfg.seeds:
        for mode in MODES:
            for k in range(1, G + 1):
                rec = c["targets"][f"{condition(mode, k)}-s{seed}"]
                teacher = f"{condition(mode, k - 1)}-s{seed}"
                assert rec["teacher"] == teacher
                assert rec["teacher_model_sha"] == model_sha(_student_dir(out, c, teacher))
                assert rec["teacher_key"] == c["students"][teacher]["key"]
                rows = read_json_objects(out / rec["file"])
                # a weak student may fail on every source (scratch:test, 3 steps): the pairs are counted
                assert len(rows) == rec["pairs"] == len(real) - rec["dropped_failed_generation"]
                assert {r["id"] for r in rows} <= set(real)
                assert all(r["source"] == real[r["id"]]["source"] for r in rows)
                if mode == "replace":  # replace trains on exactly those targets
                    split = read_json_objects(out / c["students"][f"{condition(mode, k)}-s{seed}"]["split"])
                    assert [(r["id"], r["target"]) for r in split] == [(r["id"], r["target"]) for r in rows]
    # generation 1 has one teacher for every mode: its targets are shared
    assert len({c["targets"][f"{condition(m, 1)}-s0"]["file"] for m in MODES}) == 1
    # decode again with the replace chain's generation-1 student: the generation-2 targets come back
    rec = c["targets"]["replace_gen2-s0"]
    rows = read_json_objects(out / rec["file"])
    settings = rec["settings"]
    gen = build_generator("transformers", model=str(_student_dir(out, c, "replace_gen1-s0")),
                          **{k: v for k, v in settings.items() if v is not None})
    try:
        again = gen.generate([r["source"] for r in rows], rows[0]["src_lang"], rows[0]["tgt_lang"])
    finally:
        gen.close()
    assert [a.target for a in again] == [r["target"] for r in rows]


def test_accumulate_contains_real_data_at_every_generation(tiny_run):
    cfg, out, results, _ = tiny_run
    c = results["collapse"]
    real = {(r["id"], r["target"]) for r in read_json_objects(out / "splits" / "real.jsonl")}
    for seed in cfg.seeds:
        for k in range(1, c["generations"] + 1):
            acc = read_json_objects(out / c["students"][f"accumulate_gen{k}-s{seed}"]["split"])
            eq = read_json_objects(out / c["students"][f"accumulate_equal_gen{k}-s{seed}"]["split"])
            rep = read_json_objects(out / c["students"][f"replace_gen{k}-s{seed}"]["split"])
            assert real <= {(r["id"], r["target"]) for r in acc}  # all of the real data
            assert len(acc) == len(real) + sum(c["targets"][f"accumulate_gen{j}-s{seed}"]["pairs"]
                                               for j in range(1, k + 1))
            assert {r["origin"] for r in acc} == {"human"} | {f"gen{j}" for j in range(1, k + 1)}
            human_eq = [r for r in eq if r["origin"] == "human"]
            assert human_eq and {(r["id"], r["target"]) for r in human_eq} <= real  # some real data
            assert len(eq) == len(real) and len(rep) <= len(real)  # as large as replace's
            assert all(r["origin"] == f"gen{k}" for r in rep)  # replace: generated targets only
    # generation 0 is one student per seed, the shared start of every chain
    assert {n for n in c["students"] if n.startswith(GEN0)} == {f"gen0-s{s}" for s in cfg.seeds}


def test_scores_and_d_k_are_recomputed_from_the_logged_samples(tiny_run):
    from regurg_bench.protocol.report import load_samples
    from regurg_bench.scoring import degradation, paired_bootstrap

    cfg, out, results, _ = tiny_run
    c = results["collapse"]
    task = results["tasks"][0]
    hyps, refs = {}, None
    for cond in c["conditions"]:
        hyps[cond] = []
        for seed in cfg.seeds:
            s = c["students"][f"{cond}-s{seed}"]
            path = out / s["samples"][task]
            _, h, refs = load_samples(path.parent, path.name)
            hyps[cond].append(h)
    assert len(refs) == 5 and c["n_test_sentences"] == 5
    bs = paired_bootstrap("chrf", hyps, refs, n=cfg.scoring.resamples, seed=cfg.scoring.seed)
    for mode in MODES:
        for k in (1, 2):
            stored = c["degradation"][task][mode][str(k)]["chrf"]
            d = degradation(bs, GEN0, condition(mode, k), cfg.scoring.level).to_dict()  # ±inf -> None
            assert (stored["ci_low"], stored["ci_high"], stored["p_value"]) == (d["ci_low"], d["ci_high"], d["p_value"])
            assert stored["estimate"] == pytest.approx(
                (c["scores"][task][GEN0]["chrf"]["score"] - c["scores"][task][condition(mode, k)]["chrf"]["score"])
                / c["scores"][task][GEN0]["chrf"]["score"])
    kinds = {(cl["claim"], cl["mode"]) for cl in c["claims"]}
    assert {("collapse_growth", m) for m in MODES} <= kinds
    assert {("collapse_bounded", "accumulate"), ("collapse_bounded", "accumulate_equal")} <= kinds
    assert {("collapse_tail", m) for m in MODES} <= kinds
    verdict_words = ("holds", "contradicted", "inconclusive", "undefined", "undetermined")
    for cl in c["claims"]:
        verdicts = [cl["verdict"]] if "verdict" in cl else [e["verdict"] for e in cl["per_metric"].values()]
        assert all(v.startswith(verdict_words) for v in verdicts)
    # diagnostics per generation: the human targets keep all of their own tail and head
    stats = c["diagnostics"]["per_seed"]["0"]["stats"]
    assert stats["real"]["tail_kept"] == 1.0 and stats["real"]["head_kept"] == 1.0
    assert {"types_at_budget", "distinct_2", "tail_kept"} <= set(stats["real"])
    assert all({"pairs", "tail_kept", "head_kept"} <= set(stats[cond]) for cond in c["conditions"][1:])
    assert c["diagnostics"]["token_budget"] > 0


def test_collapse_generations_are_steps_listed_by_the_dry_run_and_the_eta(tiny_run, tmp_path):
    """The dry run lists every collapse step in the order the run executed them; the progress bar's work items
    name each of them; generation 0 is the main matrix's REAL student (trained and evaluated once)."""
    from regurg_bench.protocol.estimate import plan_work
    from regurg_bench.protocol.plan import planned_conditions

    cfg, _, results, messages = tiny_run
    plan = run_protocol(cfg, tmp_path / "dry", dry_run=True, say=lambda _m: None)
    assert plan["steps"] == results["steps"]
    collapse = [n for n in plan["steps"] if n.startswith("collapse:")]
    # per seed: gen1's targets once (shared), then per generation and mode its targets (k >= 2), data,
    # training and evaluation: 2 seeds x (1 + 2 x 3 x 3 + 3) steps
    assert len(collapse) == 2 * (1 + 2 * 3 * 3 + 3)
    assert collapse[:5] == ["collapse:targets:gen1-s0", "collapse:data:replace_gen1-s0",
                            "collapse:train:replace_gen1-s0", "collapse:eval:replace_gen1-s0",
                            "collapse:data:accumulate_gen1-s0"]
    items = {(it.stage, it.name) for it in plan_work(cfg, planned_conditions(cfg)) if it.stage.startswith("collapse")}
    stages = {"targets": "collapse_generate", "train": "collapse_train", "eval": "collapse_eval"}
    assert items == {(stages[n.split(":")[1]], n.split(":")[2]) for n in collapse if n.split(":")[1] in stages}
    c = results["collapse"]
    for seed in cfg.seeds:
        assert c["students"][f"gen0-s{seed}"]["model_id"] == results["students"][f"real-s{seed}"]["model_id"]
    assert not any("gen0" in p.name for p in (tiny_run[1] / "collapse" / "students").iterdir())
    assert sum(m.startswith("[collapse train") for m in messages) == 2 * 2 * 3


def test_tail_claim_has_an_interval_at_every_generation(tiny_run):
    cfg, _, results, _ = tiny_run
    tails = [cl for cl in results["collapse"]["claims"] if cl["claim"] == "collapse_tail"]
    assert [cl["mode"] for cl in tails] == list(MODES)
    for cl in tails:
        assert [g["generation"] for g in cl["per_generation"]] == [1, 2]
        for g in cl["per_generation"]:
            assert g["ci_low"] <= g["estimate"] <= g["ci_high"]
            assert g["estimate"] == pytest.approx(g["head_kept"] - g["tail_kept"])
        lows = [g["ci_low"] for g in cl["per_generation"]]
        highs = [g["ci_high"] for g in cl["per_generation"]]
        expected = ("holds" if min(lows) > 0 else "contradicted" if max(highs) < 0 else "inconclusive")
        assert cl["verdict"] == expected and len(cl["per_seed_verdicts"]) == len(cfg.seeds)


def test_ray_runs_the_chains_and_gives_the_local_curves(tiny_run, tmp_path):
    """A real local Ray cluster (2 CPUs): every collapse step a Ray task, independent chains side by side."""
    import ray

    cfg, clean_out, _, _ = tiny_run
    try:
        results = run_protocol(cfg, tmp_path / "ray", say=lambda _m: None, executor="ray", num_cpus=2)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    local = json.loads((clean_out / "results.json").read_text(encoding="utf-8"))["collapse"]
    assert _strip(json.loads(json.dumps(results["collapse"]))) == _strip(local)


def _strip(section: dict) -> dict:
    """The section without what names a run's own files (lm-eval names its samples files by the model path
    and a timestamp)."""
    students = {n: {k: v for k, v in s.items() if k != "samples"} for n, s in section["students"].items()}
    return {k: v for k, v in section.items()} | {"students": students}


def test_report_plots_and_leaderboard_schema(tiny_run):
    from regurg_bench.leaderboard.schema import RunResults

    _, out, results, _ = tiny_run
    for name in ("collapse_scores.png", "collapse_diversity.png", "collapse/collapse.json"):
        assert (out / name).stat().st_size > 0
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "Degradation across generations" in md and "collapse_scores.png" in md
    text = (out / "results.json").read_text(encoding="utf-8")
    on_disk = json.loads(text)
    typed = RunResults.model_validate(on_disk)
    assert typed.collapse.generations == 2
    # the section is typed (claims, diagnostics) and loses nothing: results.json round-trips byte for byte, and
    # the study's own collapse.json holds the same section
    assert json.dumps(typed.to_data(), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n" == text
    assert json.loads((out / "collapse" / "collapse.json").read_text(encoding="utf-8")) == on_disk["collapse"]
    without = {k: v for k, v in on_disk.items() if k != "collapse"}  # an entry without the section stays valid
    assert RunResults.model_validate(without).collapse is None
    broken = json.loads(json.dumps(on_disk))
    del broken["collapse"]["scores"][results["tasks"][0]]["replace_gen2"]
    with pytest.raises(ValueError, match="replace_gen2"):
        RunResults.model_validate(broken)


def test_kill_9_mid_collapse_then_rerun_gives_identical_curves(tiny_run, tmp_path):
    """A real SIGKILL while the chains are trained; the re-run resumes and gives the clean run's curves."""
    import os
    import signal
    import subprocess
    import sys

    _, clean_out, _, _ = tiny_run
    clean = json.loads((clean_out / "results.json").read_text(encoding="utf-8"))["collapse"]
    cfg_path = _write(tmp_path, TINY)
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "regurg_bench.cli", "run", str(cfg_path), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if len(list(out.glob("collapse/students/*/training_card.json"))) >= 4:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (out / "run_done.json").exists()
    said: list[str] = []
    resumed = run_protocol(load_protocol_config(cfg_path), out, say=said.append)["collapse"]
    assert any("cached" in m for m in said if m.startswith("[collapse train"))

    assert _strip(json.loads(json.dumps(resumed))) == _strip(clean)
    task = next(iter(clean["scores"]))
    for name, s in clean["students"].items():  # the logged samples themselves are byte-identical
        assert (out / resumed["students"][name]["samples"][task]).read_bytes() == \
            (clean_out / s["samples"][task]).read_bytes()
