"""The trainer end to end: real training steps, real checkpoints, a real lm_eval run, a real kill -9,
a real two-process DDP run. Everything uses the ``test`` preset and a few hundred embedded pairs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from regurg_bench.corpora.base import CorpusError, fingerprint_pairs
from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.prompt import render_prompt
from regurg_bench.training import TrainConfig, train
from regurg_bench.training.card import read_card
from regurg_bench.training.data import collate, encode_pair, load_split, order_hash

SPEC = "bible:en-es:train"


def _config(out: Path, **overrides) -> TrainConfig:
    base = dict(split=SPEC, out=str(out), base_model="scratch:test", max_pairs=200, batch_size=16,
                max_steps=12, checkpoint_every=0, progress=False, num_threads=2)
    return TrainConfig(**(base | overrides))


def _write_split(path: Path, pairs, **extra_fields) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i, pair in enumerate(pairs):
            row = {"id": pair.id, "source": pair.source, "target": pair.target, "src_lang": pair.src_lang,
                   "tgt_lang": pair.tgt_lang}
            row.update({k: v(i) if callable(v) else v for k, v in extra_fields.items()})
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model.safetensors")


@pytest.fixture(scope="module")
def student(tmp_path_factory) -> Path:
    """A from-scratch student trained for 2 epochs on 300 pairs (a few seconds)."""
    out = tmp_path_factory.mktemp("student")
    train(_config(out, max_pairs=300, max_steps=None, epochs=2, log_every=5))  # speed: benchmarks/train_speed.py
    return out


# --- prompt and loss mask -----------------------------------------------------------------------

def test_loss_is_on_the_completion_only(tiny_model_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    pair = load_bible_pairs("en-es", "train")[0]
    ids, n_prompt = encode_pair(tokenizer, pair, max_length=512)
    input_ids, mask, labels = collate([(ids, n_prompt), (ids[:10], 5)], pad_id=tokenizer.pad_token_id)
    assert tokenizer.decode(ids[:n_prompt]) == render_prompt(pair.source, "en", "es")
    kept = labels[0][labels[0] != -100].tolist()
    assert tokenizer.decode(kept) == " " + pair.target + "\n"
    assert input_ids.shape[1] % 8 == 0 and mask[1].sum() == 10 and (labels[1] != -100).sum() == 5
    # Over-long examples lose prompt tokens from the left, never target tokens.
    short_ids, short_n = encode_pair(tokenizer, pair, max_length=len(ids) - 3)
    assert short_ids == ids[3:] and short_n == n_prompt - 3


# --- from scratch, card, lm-eval ----------------------------------------------------------------

def test_student_checkpoint_and_card(student):
    for name in ("model.safetensors", "config.json", "tokenizer.json", "training_card.json"):
        assert (student / name).is_file(), name
    assert not (student / "checkpoints").exists()  # intermediate state is gone once finished
    card = read_card(student)
    pairs = load_bible_pairs("en-es", "train")[:300]
    assert card["split"]["fingerprint"] == fingerprint_pairs(pairs)
    assert card["steps"] == 38 and card["method"] == "scratch" and card["order"]["mode"] == "shuffle"
    assert card["tokens"] > card["target_tokens"] > 0 and card["wall_time_s"] > 0
    curve = card["loss_curve"]
    assert [p["step"] for p in curve] == [5, 10, 15, 20, 25, 30, 35, 38]
    assert curve[-1]["loss"] < curve[0]["loss"] - 0.5  # it learned something


@pytest.mark.slow
def test_lm_eval_hf_backend_scores_the_student(student, tmp_path):
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"
    out = tmp_path / "eval"
    cmd = [exe, "--model", "hf", "--model_args", f"pretrained={student},dtype=float32",
           "--tasks", "regurg_mt_en-es", "--limit", "3", "--device", "cpu", "--output_path", str(out),
           "--gen_kwargs", "max_gen_toks=16", "--log_samples"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results_file,) = out.rglob("results_*.json")
    scores = json.loads(results_file.read_text())["results"]["regurg_mt_en-es"]
    assert 0 <= scores["chrf,none"] <= 100 and scores["ter,none"] >= 0
    (samples,) = out.rglob("samples_*.jsonl")
    rows = [json.loads(line) for line in samples.read_text().splitlines()]
    assert len(rows) == 3 and all(isinstance(r["filtered_resps"][0], str) for r in rows)


# --- data order ---------------------------------------------------------------------------------

def test_curriculum_order_is_exactly_the_order_consumed(tmp_path):
    pairs = load_bible_pairs("en-es", "train")[:80]
    _write_split(tmp_path / "split" / "train.jsonl", pairs)
    wanted = [p.id for p in reversed(pairs)][:50]  # a subset, in an order unlike the file's
    curriculum = tmp_path / "order.txt"
    curriculum.write_text("\n".join(wanted) + "\n")
    seen: list[list[str]] = []
    out = train(_config(tmp_path / "out", split=str(tmp_path / "split"), curriculum=str(curriculum),
                        max_steps=None, epochs=1, batch_size=8), on_step=lambda s: seen.append(s.ids))
    assert [i for ids in seen for i in ids] == wanted
    assert [len(ids) for ids in seen] == [8] * 6 + [2]
    card = read_card(out)
    assert card["order"]["mode"] == "curriculum"
    assert card["order"]["sha256"] == order_hash([wanted[i:i + 8] for i in range(0, 50, 8)])


def test_curriculum_window_keeps_the_order_per_window_and_cuts_padding(tmp_path):
    pairs = load_bible_pairs("en-es", "train")[:96]
    _write_split(tmp_path / "split" / "train.jsonl", pairs)
    wanted = [p.id for p in pairs[::-1]]
    (tmp_path / "order.txt").write_text("\n".join(wanted) + "\n")

    def run(out: str, window: int, seed: int = 0) -> list[list[str]]:
        seen: list[list[str]] = []
        train(_config(tmp_path / out, split=str(tmp_path / "split"), curriculum=str(tmp_path / "order.txt"),
                      max_steps=None, epochs=1, batch_size=8, curriculum_window=window, seed=seed),
              on_step=lambda s: seen.append(s.ids))
        return seen

    exact, windowed = run("exact", 0), run("w4", 4)
    assert [i for ids in exact for i in ids] == wanted
    # Windows of 4 batches = 32 ids: each window holds exactly the ids of that slice of the order ...
    for w in range(3):
        assert sorted(i for ids in windowed[4 * w:4 * w + 4] for i in ids) == sorted(wanted[32 * w:32 * w + 32])
    assert [len(ids) for ids in windowed] == [8] * 12
    # ... but no longer in the exact order, and batches are made of similar lengths (less padding).
    assert windowed != exact
    length = {p.id: len(p.source) + len(p.target) for p in pairs}

    def padding(batches):
        return sum(max(length[i] for i in ids) * len(ids) - sum(length[i] for i in ids) for ids in batches)

    assert padding(windowed) < 0.6 * padding(exact)
    assert run("w4b", 4) == windowed and run("w4s1", 4, seed=1) != windowed  # seeded


def test_rank_field_orders_and_shuffle_is_seeded(tmp_path):
    pairs = load_bible_pairs("en-es", "train")[:40]
    ranked = _write_split(tmp_path / "ranked.jsonl", pairs, curriculum_rank=lambda i: -i)
    seen: list[str] = []
    train(_config(tmp_path / "r", split=str(ranked), max_steps=None, epochs=1, batch_size=8),
          on_step=lambda s: seen.extend(s.ids))
    assert seen == [p.id for p in reversed(pairs)]

    def shuffled(seed: int, out: str) -> list[str]:
        ids: list[str] = []
        train(_config(tmp_path / out, split=str(_write_split(tmp_path / "plain.jsonl", pairs)), seed=seed,
                      max_steps=None, epochs=1, batch_size=8), on_step=lambda s: ids.extend(s.ids))
        return ids

    first, again, other = shuffled(0, "s0"), shuffled(0, "s0b"), shuffled(1, "s1")
    assert sorted(first) == sorted(p.id for p in pairs)  # one epoch = every pair once
    assert first == again and first != other and first != [p.id for p in pairs]


def test_curriculum_with_unknown_id_is_an_error(tmp_path):
    pairs = load_bible_pairs("en-es", "train")[:10]
    split = _write_split(tmp_path / "s.jsonl", pairs)
    (tmp_path / "c.txt").write_text("no-such-id\n")
    with pytest.raises(CorpusError, match="not in the split"):
        train(_config(tmp_path / "out", split=str(split), curriculum=str(tmp_path / "c.txt")))


def test_split_folder_reads_manifest_and_validates_rows(tmp_path):
    pairs = load_bible_pairs("en-es", "train")[:5]
    _write_split(tmp_path / "split" / "train.jsonl", pairs)
    (tmp_path / "split" / "manifest.json").write_text(json.dumps({"fingerprint": "sha256:declared"}))
    data = load_split(str(tmp_path / "split"))
    assert data.declared_fingerprint == "sha256:declared" and data.fingerprint == fingerprint_pairs(pairs)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "source": "x", "target": "y", "src_lang": "en", "tgt_lang": "es"}\n'
                   '{"id": "b", "source": "x", "src_lang": "en", "tgt_lang": "es"}\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl:2 \(field 'target'\)"):
        load_split(str(bad))


# --- determinism and resume ---------------------------------------------------------------------

def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = _weights(train(_config(tmp_path / "a")))
    b = _weights(train(_config(tmp_path / "b")))
    c = _weights(train(_config(tmp_path / "c", seed=1)))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_dropout_makes_each_seed_of_a_curriculum_student_a_distinct_replicate(tiny_model_dir, tmp_path):
    """A fixed curriculum over a fixed base: without dropout the seed changes nothing (the three seeds of
    the default's M1-order students were one student); with seeded dropout every seed is another student,
    the same seed is still the same student, and the saved config keeps the base's (evaluation) setting."""
    pairs = load_bible_pairs("en-es", "train")[:64]
    _write_split(tmp_path / "split" / "train.jsonl", pairs)
    (tmp_path / "order.txt").write_text("\n".join(p.id for p in reversed(pairs)) + "\n")

    def fine_tune(name: str, **overrides) -> dict[str, torch.Tensor]:
        return _weights(train(_config(tmp_path / name, split=str(tmp_path / "split"), base_model=str(tiny_model_dir),
                                      curriculum=str(tmp_path / "order.txt"), max_steps=4, batch_size=16,
                                      lr=1e-3, **overrides)))

    plain = [fine_tune(f"plain-{seed}", seed=seed) for seed in (0, 1)]
    assert all(torch.equal(plain[0][k], plain[1][k]) for k in plain[0])  # the seed did nothing
    dropped = [fine_tune(f"drop-{seed}", seed=seed, dropout=0.1) for seed in (0, 1)]
    assert not all(torch.equal(dropped[0][k], dropped[1][k]) for k in dropped[0])
    again = fine_tune("drop-0-again", seed=0, dropout=0.1)
    assert all(torch.equal(dropped[0][k], again[k]) for k in again)
    base_cfg = json.loads((tiny_model_dir / "config.json").read_text())
    saved_cfg = json.loads((tmp_path / "drop-0" / "config.json").read_text())
    assert saved_cfg.get("attention_dropout") == base_cfg.get("attention_dropout")
    # an unset dropout leaves the training hash as it was before the field existed
    from regurg_bench.hashing import config_hash
    from regurg_bench.training.config import NON_SEMANTIC_FIELDS

    unset = _config(tmp_path / "x")
    before = {k: v for k, v in unset.to_dict().items() if k not in NON_SEMANTIC_FIELDS and k != "dropout"}
    assert unset.semantic_hash() == config_hash(before)
    assert _config(tmp_path / "x").semantic_hash() != _config(tmp_path / "x", dropout=0.1).semantic_hash()


def test_stop_and_resume_in_process_matches_uninterrupted(tmp_path):
    full = _weights(train(_config(tmp_path / "full")))
    out = tmp_path / "sliced"
    train(_config(out, stop_after_steps=5))
    assert read_card(out) is None and (out / "checkpoints" / "step-00000005").is_dir()
    train(_config(out))
    resumed = _weights(out)
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    assert read_card(out)["segments"] == 2


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "regurg_bench.training.commands", "train", *args]


@pytest.mark.slow
def test_resume_after_kill_9_gives_the_uninterrupted_weights(tmp_path):
    args = ["--split", SPEC, "--max-pairs", "300", "--base-model", "scratch:test", "--batch-size", "16",
            "--max-steps", "150", "--checkpoint-every", "5", "--threads", "2", "--no-progress"]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args, "--out", str(killed)), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not list((killed / "checkpoints").glob("step-*/state.json")):
            assert proc.poll() is None, "training ended before any checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # let it run past the checkpoint, maybe into writing the next one
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert read_card(killed) is None
    resumed_from = max(int(p.name.split("-")[1]) for p in (killed / "checkpoints").glob("step-*"))
    assert 0 < resumed_from < 150
    done = subprocess.run(_cli(*args, "--out", str(killed)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stderr

    # The uninterrupted reference runs in this process: same code, same thread count, same seed.
    straight = train(_config(tmp_path / "straight", max_pairs=300, batch_size=16, max_steps=150,
                             checkpoint_every=5))
    a, b = _weights(killed), _weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)
    card_a, card_b = read_card(killed), read_card(straight)
    assert card_a["segments"] == 2 and card_b["segments"] == 1
    assert card_a["order"]["sha256"] == card_b["order"]["sha256"]
    assert card_a["loss_curve"][-1]["loss"] == card_b["loss_curve"][-1]["loss"]


def test_finished_run_is_not_repeated_and_other_settings_are_refused(tmp_path):
    out = train(_config(tmp_path / "o", max_steps=3))
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    train(_config(tmp_path / "o", max_steps=3))
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(RuntimeError, match="different settings"):
        train(_config(tmp_path / "o", max_steps=4))


# --- LoRA -----------------------------------------------------------------------------------------

def test_lora_adapter_saves_loads_and_merges(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from regurg_bench.training.lora import load_adapter

    out = train(_config(tmp_path / "lora", base_model=str(tiny_model_dir), method="lora", lr=1e-2,
                        max_steps=6, merge_lora=True))
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()
    adapter_config = json.loads((out / "adapter_config.json").read_text())
    assert Path(adapter_config["base_model_name_or_path"]) == Path(tiny_model_dir).resolve()
    card = read_card(out)
    assert card["method"] == "lora" and card["trainable_parameters"] < card["parameters"] / 4

    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(render_prompt("In the beginning God created the heavens.", "en", "es"),
                      return_tensors="pt")
    with torch.no_grad():
        adapted = load_adapter(tiny_model_dir, out).eval()(**batch).logits
        merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()(**batch).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()(**batch).logits
    assert torch.allclose(adapted, merged, atol=1e-4)
    assert not torch.allclose(adapted, base, atol=1e-3)


# --- DDP ------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ddp_two_processes_on_cpu_match_one_process(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun, "torchrun not found next to the interpreter"
    args = ["--split", SPEC, "--max-pairs", "200", "--base-model", "scratch:test", "--batch-size", "16",
            "--max-steps", "8", "--threads", "1", "--precision", "fp32", "--no-progress"]
    ddp = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m",
                          "regurg_bench.training.commands", "train", *args, "--out", str(tmp_path / "ddp")],
                         capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = train(_config(tmp_path / "one", max_pairs=200, batch_size=16, max_steps=8, num_threads=1,
                           precision="fp32"))
    card_ddp, card_one = read_card(tmp_path / "ddp"), read_card(single)
    assert card_ddp["world_size"] == 2 and card_one["world_size"] == 1
    assert card_ddp["order"]["sha256"] == card_one["order"]["sha256"]
    assert card_ddp["tokens"] == card_one["tokens"]
    a, b = _weights(tmp_path / "ddp"), _weights(single)
    # Same global batches, same normalisation: equal up to float summation order.
    for k in a:
        assert torch.allclose(a[k], b[k], atol=2e-4, rtol=1e-3), k
    first = [p["loss"] for p in card_ddp["loss_curve"]]
    assert first == pytest.approx([p["loss"] for p in card_one["loss_curve"]], rel=1e-4)


# --- unlearning -----------------------------------------------------------------------------------

def _synthetic_pairs(n: int):
    """Forget set: real English sources whose "translation" is a synthetic pattern the model can learn."""
    import dataclasses

    sources = load_bible_pairs("en-es", "train")[1000:1000 + n]
    return [dataclasses.replace(p, id=f"synthetic.{i}", target=f"texto sintético número {i % 4} fin")
            for i, p in enumerate(sources)]


@pytest.mark.slow
def test_unlearning_raises_forget_loss_and_replay_keeps_real_loss_bounded(tmp_path):
    real = load_bible_pairs("en-es", "train")[:200]
    forget = _synthetic_pairs(48)
    mixed = _write_split(tmp_path / "mixed.jsonl", real + forget)
    forget_file = _write_split(tmp_path / "forget.jsonl", forget)
    real_file = _write_split(tmp_path / "real.jsonl", real)
    student = train(_config(tmp_path / "student", split=str(mixed), max_pairs=None, max_steps=None, epochs=4))

    common = dict(split=str(real_file), base_model=str(student), max_pairs=None, max_steps=10, lr=1e-3,
                  forget=str(forget_file))
    unlearned = read_card(train(_config(tmp_path / "unlearn", **common)))["unlearning"]
    control = read_card(train(_config(tmp_path / "replay-only", **common, forget_weight=0.0)))["unlearning"]

    before, after = unlearned["before"], unlearned["after"]
    assert before["forget_ce"] < 3.5 < unlearned["bound"]  # the student had learned the pattern
    assert after["forget_ce"] > before["forget_ce"] + 2.0  # ...and unlearned it
    assert after["forget_ce"] > control["after"]["forget_ce"] + 1.0  # because of the forget term
    assert after["forget_ce"] < unlearned["bound"] + 2.0  # the clamp stops the ascent near the bound
    assert after["replay_ce"] < before["replay_ce"] + 0.75  # real-data loss stays bounded


def test_a_quiet_training_shows_no_transformers_bar_and_restores_the_setting(tiny_model_dir, tmp_path, capfd):
    """progress=False (a protocol run draws its own bar): transformers' "Loading weights" and "Writing model
    shards" bars stay off the terminal, and the caller's setting is back afterwards."""
    from transformers.utils import logging as hf_logging

    pairs = load_bible_pairs("en-es", "train")[:32]
    _write_split(tmp_path / "split" / "train.jsonl", pairs)
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    train(_config(tmp_path / "quiet", split=str(tmp_path / "split"), base_model=str(tiny_model_dir), max_steps=2))
    quiet = capfd.readouterr()
    assert "Loading weights" not in quiet.err + quiet.out and "Writing model" not in quiet.err + quiet.out
    assert hf_logging.is_progress_bar_enabled()
    train(_config(tmp_path / "shown", split=str(tmp_path / "split"), base_model=str(tiny_model_dir), max_steps=2,
                  progress=True))
    assert "Loading weights" in capfd.readouterr().err  # the test can tell: a visible training shows them
