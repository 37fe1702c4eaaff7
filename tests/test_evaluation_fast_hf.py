"""``regurg-hf``: lm-eval's ``hf`` with the greedy decoder of ``greedy_decoding``; the same text, exactly."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import torch

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.evaluation.fast_hf import stop_checker
from regurg_bench.evaluation.greedy_decoding import (
    GreedyBatchDecoder,
    safe_row_counts,
    thread_slots,
    unsupported_reason,
)
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


def _reference(model, tokenizer, batches, new: int) -> tuple[list[list[int]], list[list[torch.Tensor]]]:
    """lm-eval's hf path: one model.generate per batch, every row to the end; tokens and logits per row."""
    generated, scores = [], []
    for ids, mask in batches:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, return_dict_in_generate=True, output_logits=True)
        generated += [row[ids.shape[1]:].tolist() for row in out.sequences]
        scores += [[step[i] for step in out.logits] for i in range(len(ids))]
    return generated, scores


def _frequent_char_stop(tokenizer, generated) -> list[str]:
    """Stop at the most frequent character of the outputs: most rows stop early, at different steps."""
    chars = Counter("".join(tokenizer.decode(g, skip_special_tokens=True)[1:] for g in generated))
    return [chars.most_common(1)[0][0], tokenizer.eos_token]


def test_thread_slots_put_each_live_row_on_its_reference_thread():
    # 16 rows x 4 heads on 2 threads: rows 0-7 on thread 0, 8-15 on thread 1; 3 slots each
    assert thread_slots([1, 2, 3, 12], rows=16, heads=4, threads=2) == [1, 2, 3, 12, -1, -1]
    assert thread_slots([9, 10], rows=16, heads=4, threads=2) == [-1, -1, 9, 10]
    assert thread_slots([0, 5], rows=16, heads=4, threads=1) == [0, 5]
    # 5 rows x 4 heads on 2 threads: chunks of 10 items, so row 2 is split between the threads
    assert thread_slots([0, 4], rows=5, heads=4, threads=2) == [0, 4]
    assert thread_slots([2, 4], rows=5, heads=4, threads=2) is None
    # fewer items than threads: one item per thread, every row split
    assert thread_slots([0], rows=1, heads=4, threads=8) is None


@pytest.mark.parametrize(("threads", "size"), [(1, 8), (2, 8), (2, "odd"), (3, 8)])
def test_compacted_attention_keeps_every_logit_at_any_thread_count(model_and_tokenizer, threads, size):
    """Finished rows leave the attention call (the cache shrinks to each live row's reference thread):
    every logit stays model.generate's, bit for bit, at 1, 2 and 3 threads and for an odd batch, whose
    middle row is split between two threads (e.g. 7 rows x 4 heads on 2 threads)."""
    model, tokenizer = model_and_tokenizer
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if size == "odd":  # an odd batch size whose rows keep their bits in the linear layers (machine-dependent)
            size = next((m for m in safe_row_counts(model, 15) if m % 2 and m >= 5), None)
            if size is None:
                pytest.skip("no odd batch size of 5-15 rows is a safe row count on this machine")
        batches = _batches(tokenizer, n_batches=3, size=size)
        generated, scores = _reference(model, tokenizer, batches, new=24)
        stop = _frequent_char_stop(tokenizer, generated)
        decoder = GreedyBatchDecoder(model, tokenizer.pad_token_id, {tokenizer.eos_token_id},
                                     stop_checker(tokenizer, stop), max_new_tokens=24, max_rows=size,
                                     record_logits=True)
        ours = [_text(tokenizer, row, stop) for rows in decoder.run(batches) for row in rows]
    finally:
        torch.set_num_threads(before)
    assert ours == [_text(tokenizer, g, stop) for g in generated]
    for row, (mine, theirs) in enumerate(zip(decoder.logits, scores, strict=True)):
        assert all(torch.equal(a, b) for a, b in zip(mine, theirs, strict=False)), row
    assert decoder.stats["compactions"] > 0


def test_decoder_reproduces_model_generate_while_merging_batches_and_retiring_rows(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    new = 20
    batches = _batches(tokenizer, n_batches=4, size=8)
    generated, scores = _reference(model, tokenizer, batches, new)
    stop = _frequent_char_stop(tokenizer, generated)
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


@pytest.mark.parametrize("stop", [["\n"], ["é"], [" de", "\n"], ["."]])
def test_stop_checker_finds_every_stop_at_the_token_that_completes_it(model_and_tokenizer, stop):
    """The checker is called after each new token and skips tokens that cannot complete a stop: on random
    token sequences (byte tokens included, so partial UTF-8 too) it says finished exactly at the first
    prefix whose decoded text contains a stop, as a full decode of every prefix does."""
    _, tokenizer = model_and_tokenizer
    finished = stop_checker(tokenizer, stop)
    gen = torch.Generator().manual_seed(1)
    hits = 0
    for _ in range(200):
        tokens = torch.randint(0, len(tokenizer), (40,), generator=gen).tolist()
        truth = next((k for k in range(1, 41) if any(s in tokenizer.decode(tokens[:k], skip_special_tokens=True)
                                                     for s in stop)), None)
        ours = next((k for k in range(1, 41) if finished(tokens[:k])), None)
        assert ours == truth, tokens
        hits += truth is not None
    assert hits >= 5  # the stops do occur
    if stop == ["é"]:  # "é" from its two UTF-8 bytes as two byte tokens: each alone decodes to U+FFFD
        split = tokenizer.convert_tokens_to_ids(["Ã", "©"])
        assert tokenizer.decode(split) == "é"
        prefix = tokenizer.encode("Hola ", add_special_tokens=False)
        assert not finished(prefix + split[:1]) and finished(prefix + split)
