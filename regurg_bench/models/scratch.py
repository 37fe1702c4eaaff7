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
    # For tests: builds in a second, generates fast on CPU.
    "test": ScratchPreset(vocab_size=1000, hidden_size=64, intermediate_size=128,
                          num_hidden_layers=2, num_attention_heads=4),
    # The CPU default student (about 2M parameters; see OFFLINE_ASSETS.md's feasibility probe).
    "tiny": ScratchPreset(vocab_size=4000, hidden_size=128, intermediate_size=512,
                          num_hidden_layers=4, num_attention_heads=4),
}

SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}


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


def build_scratch_model(texts: Iterable[str], out_dir: str | Path, preset: str = "tiny",
                        seed: int = 0) -> Path:
    """Train a tokenizer on ``texts``, initialise a Llama of ``preset`` size, ``save_pretrained``.

    The result loads with ``AutoModelForCausalLM.from_pretrained(out_dir)`` and with
    ``lm_eval --model hf --model_args pretrained=out_dir``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    size = PRESETS[preset]
    tokenizer = train_tokenizer(texts, size.vocab_size)
    torch.manual_seed(seed)
    config = LlamaConfig(**asdict(size) | {"vocab_size": len(tokenizer)},
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(config)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
