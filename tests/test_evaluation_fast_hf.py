"""``regurg-hf``: lm-eval's ``hf`` with the greedy decoder of ``greedy_decoding``; the same text, exactly."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.evaluation.fast_hf import stop_checker
from regurg_bench.evaluation.greedy_decoding import GreedyBatchDecoder, safe_row_counts, unsupported_reason
from regurg_bench.prompt import render_prompt


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_model_dir):
    """The tiny Llama with weights redrawn wider (seeded): the untrained one repeats one token, this one
    writes varied text, so rows stop at different steps."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * (0.02 if param.ndim == 1 else 0.3) + (param.ndim == 1))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.padding_side = "left"
    return model, tokenizer


def _batches(tokenizer, n_batches: int, size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = load_bible_pairs("en-es", "test")[: n_batches * size]
    prompts = [render_prompt(p.source, "en", "es") for p in pairs]
    out = []
    for i in range(0, len(prompts), size):
        enc = tokenizer(prompts[i:i + size], return_tensors="pt", padding="longest")
        out.append((enc["input_ids"], enc["attention_mask"]))
    return out


def _text(tokenizer, tokens: list[int], stop: list[str]) -> str:
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    for s in stop:
        text = text.split(s)[0]
    return text


def test_decoder_reproduces_model_generate_while_merging_batches_and_retiring_rows(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    new = 20
    batches = _batches(tokenizer, n_batches=4, size=8)
    generated, scores = [], []
    for ids, mask in batches:  # lm-eval's hf path: one model.generate per batch, every row to the end
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, output_logits=True)
        generated += [row[ids.shape[1]:].tolist() for row in out.sequences]
        scores += [[step[i] for step in out.logits] for i in range(len(ids))]
    # stop at the most frequent character of the outputs, so that most rows stop early, at different steps
    chars = Counter("".join(tokenizer.decode(g, skip_special_tokens=True)[1:] for g in generated))
    stop = [chars.most_common(1)[0][0], tokenizer.eos_token]
    reference = [_text(tokenizer, g, stop) for g in generated]
    decoder = GreedyBatchDecoder(model, tokenizer.pad_token_id, {tokenizer.eos_token_id},
                                 stop_checker(tokenizer, stop), max_new_tokens=new, max_rows=24, record_logits=True)
    ours = [_text(tokenizer, row, stop) for rows in decoder.run(batches) for row in rows]
    assert ours == reference
    # stronger than the text: every logit of every step a row took is model.generate's, bit for bit
    for row, (mine, theirs) in enumerate(zip(decoder.logits, scores, strict=True)):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=False)), row
    assert len(set(reference)) > 16  # varied text, not one repeated token
    assert decoder.stats["most_batches"] >= 2  # several of lm-eval's batches decoded together
    assert decoder.stats["retired_early"] > 8  # and rows left before max_new_tokens
    assert decoder.stats["alone_batches"] == 0


def test_safe_row_counts_keep_every_rows_bits(model_and_tokenizer):
    model, _ = model_and_tokenizer
    safe = safe_row_counts(model, 16)
    assert 16 in safe
    lin = model.lm_head
    x = torch.randn(16, lin.in_features, generator=torch.Generator().manual_seed(3))
    for m in safe:
        assert torch.equal(lin(x[:m]), lin(x)[:m])


def test_what_the_decoder_cannot_reproduce_is_named(model_and_tokenizer):
    model, _ = model_and_tokenizer
    assert unsupported_reason(model, {"do_sample": False, "temperature": 0.0}) is None
    assert unsupported_reason(model, {"do_sample": True}) == "sampling"
    assert "num_beams" in unsupported_reason(model, {"num_beams": 4})
    model.generation_config.repetition_penalty = 1.3
    try:
        assert "repetition_penalty" in unsupported_reason(model, {})
    finally:
        model.generation_config.repetition_penalty = 1.0


def _samples(where: Path, task: str = "regurg_mt_en-es") -> dict[int, list[str]]:
    path = where if where.is_file() else next(where.rglob(f"samples_{task}_*.jsonl"))
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return {row["doc_id"]: row["filtered_resps"] for row in rows}


def _evaluate(model_dir, out: Path, fast: bool, **kw) -> dict:
    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    return run_eval(EvalRequest(model="hf", model_args=f"pretrained={model_dir},dtype=float32", device="cpu",
                                output_path=str(out), log_samples=True, bootstrap_iters=0, fast_generation=fast,
                                **kw))


@pytest.mark.slow
def test_regurg_hf_gives_lm_evals_hf_text_through_lm_eval(tiny_model_dir, tmp_path):
    kw = {"tasks": ["regurg_mt_en-es"], "limit": 24, "batch_size": 8, "gen_kwargs": "max_gen_toks=16,until=e"}
    plain = _evaluate(tiny_model_dir, tmp_path / "hf", fast=False, **kw)
    fast = _evaluate(tiny_model_dir, tmp_path / "fast", fast=True, **kw)
    assert plain["config"]["model"] == "hf" and fast["config"]["model"] == "regurg-hf"
    assert _samples(tmp_path / "fast") == _samples(tmp_path / "hf")
    assert fast["results"] == plain["results"]


@pytest.mark.slow
def test_every_condition_of_the_tiny_protocol_run_matches_lm_evals_hf(tiny_protocol_run, tmp_path):
    """The protocol evaluates on CPU with regurg-hf; lm-eval's own hf gives every condition the same text."""
    cfg, run, results, _ = tiny_protocol_run
    e = cfg.eval
    done = set()
    for marker in sorted((run / "evals").glob("*/done.json")):
        folder, record = marker.parent, json.loads(marker.read_text(encoding="utf-8"))
        condition = record["student"].rsplit("-s", 1)[0]
        if condition in done:
            continue
        done.add(condition)
        logged = json.loads((folder / record["results_file"]).read_text(encoding="utf-8"))
        assert logged["config"]["model"] == "regurg-hf"
        student_dir = logged["config"]["model_args"].split("pretrained=")[1].split(",")[0]
        out = tmp_path / condition
        _evaluate(student_dir, out, fast=False, tasks=list(record["samples_files"]), limit=e.limit,
                  batch_size=e.batch_size, gen_kwargs=f"max_gen_toks={e.max_gen_toks}")
        for task, rel in record["samples_files"].items():
            assert _samples(out, task) == _samples(folder / rel), (condition, task)
    assert len(done) == len(results["conditions"])
