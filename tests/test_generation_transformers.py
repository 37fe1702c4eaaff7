"""The transformers backend (and the teacher backend on top of it) on real tiny checkpoints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from regurg_bench.generation import (
    GenerationCache,
    GenerationStats,
    TeacherGenerator,
    TransformersGenerator,
    build_generator,
    generate_targets,
)
from regurg_bench.prompt import render_prompt
from regurg_bench.testing.generators import scripted_model

SCRIPT = [" la", " tierra", " el"]


@pytest.fixture(scope="module")
def sources() -> list[str]:
    from regurg_bench.corpora.bible import load_bible_pairs

    pairs = load_bible_pairs("en-es", "train")
    # Different lengths, so left padding really varies inside a batch.
    return [pairs[i].source for i in (0, 1, 2, 30, 31, 500, 1000, 1001, 2000, 5000, 7000, 9000)]


@pytest.fixture(scope="module")
def scripted_dir(tiny_model_dir, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("scripted")
    return out, scripted_model(tiny_model_dir, out, SCRIPT)


def test_batched_left_padded_greedy_equals_unbatched(tiny_model_dir, sources):
    batched = TransformersGenerator(tiny_model_dir, batch_size=6, max_new_tokens=12).generate(sources, "en", "es")
    single = TransformersGenerator(tiny_model_dir, batch_size=1, max_new_tokens=12).generate(sources[:6], "en", "es")
    assert [r.text for r in batched[:6]] == [r.text for r in single]
    assert [r.n_tokens for r in batched] == [12] * len(sources)  # an untrained model never stops early


def test_prompt_is_exactly_the_shared_format(tiny_model_dir, sources):
    """The generator's output equals a hand-written greedy decode of render_prompt(...)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    prompt = render_prompt(sources[3], "en", "fr")
    assert prompt.endswith("\nFrench:") and prompt.startswith("English: ")
    ids = tok(prompt, return_tensors="pt").input_ids
    with torch.inference_mode():
        for _ in range(12):
            ids = torch.cat([ids, model(ids).logits[:, -1:].argmax(-1)], dim=1)
    manual = tok.decode(ids[0, -12:]).split("\n")[0].strip()
    got = TransformersGenerator(tiny_model_dir, max_new_tokens=12).generate([sources[3]], "en", "fr")[0]
    assert got.text == manual


def test_stops_at_newline_and_counts_tokens(scripted_dir, sources):
    folder, expected = scripted_dir
    gen = TransformersGenerator(folder, batch_size=5, max_new_tokens=64)
    results = gen.generate(sources, "en", "es")
    assert {r.text for r in results} == {expected.strip()}
    # Three words and the newline: generation stopped there, not at max_new_tokens.
    assert {r.n_tokens for r in results} == {len(SCRIPT) + 1}


def test_newline_criterion_matches_transformers_stop_strings(tiny_model_dir, scripted_dir, sources):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from regurg_bench.generation.transformers_backend import _newline_stop

    for folder in (tiny_model_dir, scripted_dir[0]):
        tok = AutoTokenizer.from_pretrained(folder)
        tok.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(folder).eval()
        enc = tok([render_prompt(s, "en", "es") for s in sources[:3]], return_tensors="pt", padding=True)
        common = {"do_sample": False, "max_new_tokens": 8, "pad_token_id": tok.pad_token_id}
        with torch.inference_mode():
            ours = model.generate(**enc, stopping_criteria=_newline_stop(tok, "cpu"), **common)
            ref = model.generate(**enc, stop_strings=["\n"], tokenizer=tok, **common)
        assert torch.equal(ours, ref)


def test_signature_stable_and_content_addressed(tiny_model_dir, tmp_path):
    a = TransformersGenerator(tiny_model_dir, max_new_tokens=32).signature()
    assert a.hash == TransformersGenerator(tiny_model_dir, max_new_tokens=32, batch_size=3).signature().hash
    assert a.hash != TransformersGenerator(tiny_model_dir, max_new_tokens=33).signature().hash
    assert a.kind == "transformers" and a.prompt_template == "{src_name}: {source}\n{tgt_name}:"
    assert a.decoding == {"strategy": "greedy", "max_new_tokens": 32, "stop": ["\n"]}
    assert set(a.versions) == {"torch", "transformers"} and a.options["dtype"] == "float32"
    # Same bytes elsewhere: same hash (the path is provenance only). Changed weights: new revision.
    copy = Path(shutil.copytree(tiny_model_dir, tmp_path / "copy"))
    moved = TransformersGenerator(copy, max_new_tokens=32).signature()
    assert moved.hash == a.hash and moved.info["path"] != a.info["path"]
    (copy / "training_card.json").write_text("{}")  # not part of the weights: no change
    assert TransformersGenerator(copy, max_new_tokens=32).signature().hash == a.hash
    config = json.loads((copy / "config.json").read_text())
    config["rms_norm_eps"] = 1e-5
    (copy / "config.json").write_text(json.dumps(config))
    assert TransformersGenerator(copy, max_new_tokens=32).signature().revision != a.revision


def test_runner_with_cache_does_not_load_the_model_twice(scripted_dir, sources, tmp_path):
    from regurg_bench.corpora.base import Pair

    folder, expected = scripted_dir
    pairs = [Pair(f"p{i}", s, "-", "en", "es") for i, s in enumerate(sources)]
    cache = GenerationCache(tmp_path)
    first_stats = GenerationStats()
    first = list(generate_targets(TransformersGenerator(folder, max_new_tokens=16), pairs, cache, batch_size=4,
                                  progress=False, stats=first_stats))
    assert first_stats.generated == len(pairs) and first_stats.tokens == len(pairs) * (len(SCRIPT) + 1)
    assert first_stats.tokens_per_second > 0 and not any(r.cached for _, r in first)
    again = TransformersGenerator(folder, max_new_tokens=16)
    second = list(generate_targets(again, pairs, cache, batch_size=4, progress=False))
    assert again._model is None  # everything came from the cache
    assert [r.text for _, r in second] == [r.text for _, r in first] == [expected.strip()] * len(pairs)
    assert all(r.cached for _, r in second)


def test_teacher_records_checkpoint_and_training_card(scripted_dir, tmp_path, sources):
    folder = Path(shutil.copytree(scripted_dir[0], tmp_path / "teacher"))
    (folder / "training_card.json").write_text(json.dumps({"card_version": 1, "seed": 3,
                                                           "data": {"fingerprint": "sha256:abc"}}))
    teacher = build_generator("teacher", checkpoint=str(folder), max_new_tokens=16, batch_size=4)
    assert isinstance(teacher, TeacherGenerator)
    sig = teacher.signature()
    assert sig.kind == "teacher" and sig.info["checkpoint"] == str(folder.resolve())
    assert sig.info["trained_by_regurg_bench"] and sig.info["training_card"]["seed"] == 3
    plain = TransformersGenerator(folder, max_new_tokens=16).signature()
    assert sig.revision == plain.revision and sig.hash != plain.hash
    assert [r.text for r in teacher.generate(sources[:3], "en", "es")] == [scripted_dir[1].strip()] * 3
    with pytest.raises(ValueError, match="not a local Hugging Face checkpoint"):
        build_generator("teacher", checkpoint=str(tmp_path / "nothing-here"))
