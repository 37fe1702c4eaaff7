"""From-scratch students: a byte-level BPE tokenizer trained on the corpus and a small Llama.

Decoder-only on purpose: the same checkpoint runs under lm-eval's ``hf`` and ``vllm`` backends and
under our generators, so a trained student can be the teacher of the next generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ScratchPreset:
    """Size of a from-scratch Llama student."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    max_position_embeddings: int = 512


PRESETS: dict[str, ScratchPreset] = {
    # For tests: builds in a second, trains and generates fast on CPU (~0.2M parameters).
    "test": ScratchPreset(vocab_size=1000, hidden_size=64, intermediate_size=128,
                          num_hidden_layers=2, num_attention_heads=4),
    # The CPU default student (~2.1M parameters, the size of OFFLINE_ASSETS.md's feasibility probe).
    "tiny": ScratchPreset(vocab_size=4000, hidden_size=128, intermediate_size=512,
                          num_hidden_layers=4, num_attention_heads=4),
    # GPU students: ~16M and ~60M parameters (tied embeddings), vocabularies for the full corpus.
    "small": ScratchPreset(vocab_size=8000, hidden_size=384, intermediate_size=1536,
                           num_hidden_layers=6, num_attention_heads=6),
    "base": ScratchPreset(vocab_size=16000, hidden_size=640, intermediate_size=2560,
                          num_hidden_layers=10, num_attention_heads=10),
}

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


def get_preset(preset: str) -> ScratchPreset:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[preset]


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE tokenizer (HF ``tokenizers``) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, **SPECIAL_TOKENS)


def init_scratch_model(tokenizer, preset: str = "tiny", seed: int = 0):
    """A randomly initialised ``LlamaForCausalLM`` of ``preset`` size for ``tokenizer`` (seeded)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size = get_preset(preset)
    torch.manual_seed(seed)
    config = LlamaConfig(**asdict(size) | {"vocab_size": len(tokenizer)},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    return LlamaForCausalLM(config)


def build_scratch_model(texts: Iterable[str], out_dir: str | Path, preset: str = "tiny",
                        seed: int = 0) -> Path:
    """Train a tokenizer on ``texts``, initialise a Llama of ``preset`` size, ``save_pretrained``.

    The result loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and with
    ``lm_eval --model hf --model_args pretrained=out_dir``.
    """
    tokenizer = train_tokenizer(texts, get_preset(preset).vocab_size)
    model = init_scratch_model(tokenizer, preset, seed)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
