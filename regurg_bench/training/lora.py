"""LoRA via peft: wrap a causal LM, save the adapter (loads in lm-eval ``hf`` with ``peft=DIR`` and in
lm-eval's vLLM backend with ``lora_local_path=DIR``), optionally merge it into a full checkpoint."""

from __future__ import annotations

from pathlib import Path

from regurg_bench.training.config import TrainConfig


def wrap_lora(model, config: TrainConfig):
    """``model`` with LoRA adapters on ``config.lora_target_modules``; only the adapters train."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=config.lora_target_modules, task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def save_merged(peft_model, tokenizer, out_dir: Path) -> Path:
    """Merge the adapter into a copy of the base weights and ``save_pretrained`` the full model."""
    import copy

    merged = copy.deepcopy(peft_model).merge_and_unload()
    merged.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def load_adapter(base_model: str | Path, adapter_dir: str | Path):
    """The base model with a saved adapter applied (what lm-eval's ``peft=`` argument does)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model)
    return PeftModel.from_pretrained(base, adapter_dir)
