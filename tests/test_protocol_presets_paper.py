"""--preset paper-smoke is --preset paper shrunk: the two YAML files differ only where a CPU forces it.

Reads both presets (no model, no vLLM): every key of paper.yaml is in paper-smoke.yaml with the same
value, except the keys below (sizes, steps, limits, models, and where the data come from); paper-smoke
adds only ``max_steps`` (a step budget instead of two epochs), the generators' local-model options and
the keys that shrink the matrix (one generator for the mixes and M1/M3/M4). Both evaluate their LoRA
students as adapters on one vLLM engine per base model (``eval.lora: adapter``): an engine start costs
~40 s on 2 cores, a student's evaluation on a running engine ~10 s.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import yaml

from regurg_bench.protocol.config import load_protocol_config, preset_path
from regurg_bench.protocol.run import planned_conditions
from regurg_bench.protocol.smoke import ASSETS, PLACEHOLDER, placeholders

#: keys allowed to differ, each with why (glob patterns over dotted paths)
MAY_DIFFER = {
    "name": "the preset's own name",
    "build.name": "the splits' name",
    "build.corpus": "hf: of a local save_to_disk dataset (offline) instead of the hub's Europarl",
    "build.corpus_options.*": "that dataset's split names",
    "build.src_lang": "the embedded corpus has es-en, not de-en (the same X->English shape)",
    "build.size": "size",
    "build.batch_size": "size",
    "build.ladder.step": "size (the ladder keeps one rung)",
    "build.mixes.generators": "matrix size: paper's mix ratios over one generator (each costs 3 students)",
    "build.fractions_of_real": "matrix size: one fraction of real",
    "mitigations.generators": "matrix size: M1/M3/M4 on one generator (each costs 4 students + a held-out build)",
    "build.generators.*.options.*": "models: a 135M model on CPU instead of Llama-3.1-8B / gpt-4o-mini",
    "train.base_model": "model: SmolLM2-135M-Instruct instead of Qwen2.5-0.5B",
    "train.batch_size": "size",
    "train.max_length": "size",
    "train.max_steps": "steps (overrides epochs)",
    "train.precision": "fp32 on CPU (bf16 would move the numbers against the parity reference)",
    "train.checkpoint_every": "steps: one step, no intermediate checkpoint",
    "seeds": "one seed",
    "eval.metadata.*": "the same local dataset's test split, es->en",
    "eval.limit": "limit",
    "eval.max_gen_toks": "limit",
    "eval.batch_size": "size",
    "eval.dtype": "fp32 on CPU",
    "resources.gpus": "no GPU: each student's Ray task asks for CPUs only",
    "resources.cpus": "2 cores: one CPU per Ray task",
    "mitigations.quality.qe_model": "model: a TEST-ONLY COMET-QE checkpoint (no real one is available offline)",
    "mitigations.detector.heldout_pairs": "size",
    "mitigations.unlearning.steps": "steps",
}


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        out: dict[str, Any] = {}
        for key, value in data.items():
            out |= _flat(value, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): data}


def _raw(name: str) -> dict[str, Any]:
    return yaml.safe_load(preset_path(name).read_text(encoding="utf-8"))


def _allowed(key: str) -> bool:
    return any(fnmatch.fnmatchcase(key, pattern) for pattern in MAY_DIFFER)


def test_paper_smoke_differs_from_paper_only_where_a_cpu_forces_it():
    paper, smoke = _flat(_raw("paper")), _flat(_raw("paper-smoke"))
    changed = sorted(k for k in paper if smoke.get(k, "<missing>") != paper[k] and not _allowed(k))
    assert not changed, {k: (paper[k], smoke.get(k, "<missing>")) for k in changed}
    added = sorted(k for k in smoke if k not in paper and not _allowed(k))
    assert not added, {k: smoke[k] for k in added}
    # nothing allowed was left unused: each exemption is needed
    unused = [p for p in MAY_DIFFER if not any(fnmatch.fnmatchcase(k, p) and paper.get(k) != smoke.get(k)
                                               for k in paper.keys() | smoke.keys())]
    assert not unused, unused


def test_paper_smoke_keeps_every_code_path_of_paper():
    paper, smoke = load_protocol_config(preset_path("paper")), load_protocol_config(preset_path("paper-smoke"))
    assert {n: g.kind for n, g in smoke.build.generators.items()} == {n: g.kind for n, g in paper.build.generators.items()}
    assert smoke.build.corpus.startswith("hf:") and smoke.eval.metadata["corpus"].startswith("hf:")
    assert (smoke.train["method"], smoke.train["merge_lora"], smoke.eval.backend) == ("lora", True, "vllm")
    assert smoke.eval.lora == paper.eval.lora == "adapter"  # one engine per base model, not one per student
    assert smoke.eval.tasks == paper.eval.tasks == ["regurg_mt_custom"]
    assert smoke.mitigations.quality.qe_model  # M1 through COMET-QE, as in paper
    # the same kinds of students: every condition family of paper is in the smoke matrix
    def families(cfg) -> set[str]:  # condition names without sizes and generator names
        gens = "|".join(cfg.build.generators)
        return {re.sub(rf"_({gens})\b", "_G", c.rstrip("0123456789_").split("_<")[0]) for c in planned_conditions(cfg)}
    assert families(paper) == families(smoke)
    assert len(planned_conditions(smoke)) <= len(planned_conditions(paper))


def test_paper_smoke_placeholders_name_known_assets():
    smoke = load_protocol_config(preset_path("paper-smoke"))
    names = placeholders(smoke.model_dump(mode="json"))
    assert names == set(ASSETS) == {"bible-es-en", "comet-qe-test-only"}
    assert PLACEHOLDER not in preset_path("paper").read_text(encoding="utf-8")
