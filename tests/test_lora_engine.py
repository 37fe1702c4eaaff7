"""One vLLM engine for many LoRA students (``eval.lora: adapter``), for real on vLLM's CPU build.

A tiny LoRA protocol (scripted generators; LoRA students of the embedded ``bible-base-en-es`` base, a
pretrained 1.56M-parameter Llama with head size 32; M3 and M4, whose student continues the merged REGURG
student and so has a base of its own) runs through ``run_protocol`` with the local executor. Checked:

* the engine is started once per base model, counted by the code's own counter
  (:func:`regurg_bench.evaluation.lora_engine.engine_starts`): 2 starts for the run's students, where the
  merged path starts one per student;
* every student's logged samples are byte for byte those of plain lm-eval with an engine of its own
  (``--model vllm --model_args pretrained=BASE,lora_local_path=ADAPTER,...``, the reference path);

The evaluation key (no vLLM needed) records the path: ``tests/test_protocol.py`` has no LoRA run, so the
key test lives here, unmarked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from regurg_bench.protocol.config import ProtocolConfig, load_protocol_config

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU (the default is large)

TASK = "regurg_mt_en-es"
LORA_PROTOCOL = {
    "name": "tiny-lora",
    "build": {"name": "tiny-lora", "corpus": "bible:en-es:train", "size": 60,
              "generators": {"scripted": {"kind": "scripted"}}, "write_hf": False},
    "train": {"base_model": "bible-base-en-es", "method": "lora", "lora_r": 8, "lora_alpha": 16, "lr": 1.0e-2,
              "max_steps": 3, "batch_size": 8, "checkpoint_every": 0, "merge_lora": True, "precision": "fp32"},
    "eval": {"backend": "vllm", "tasks": [TASK], "limit": 6, "max_gen_toks": 24, "batch_size": 6,
             "dtype": "float32", "lora": "adapter"},
    "seeds": [0],
    "mitigations": {"quality": {"enabled": False}, "detector": {"heldout_pairs": 30}, "unlearning": {"steps": 2}},
    "scoring": {"resamples": 20},
}


def _config(tmp_path: Path, **eval_changes) -> ProtocolConfig:
    raw = json.loads(json.dumps(LORA_PROTOCOL))
    raw["eval"].update(eval_changes)
    path = tmp_path / f"lora-{len(list(tmp_path.glob('lora-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_protocol_config(path)


def test_the_evaluation_key_records_the_lora_path(tmp_path):
    from regurg_bench.protocol.plan import Student, eval_settings
    from regurg_bench.protocol.steps import eval_step

    adapter, merged = _config(tmp_path), _config(tmp_path, lora="merged")
    s = Student("real", 0, tmp_path / "real.jsonl", "real", key="k" * 16, dir=tmp_path / "students" / "real-s0")
    a, m = eval_step(adapter, s, [TASK], tmp_path), eval_step(merged, s, [TASK], tmp_path)
    assert eval_settings(adapter, [TASK])["lora"] == "adapter" and eval_settings(merged, [TASK])["lora"] == "merged"
    assert a.key != m.key and a.folder != m.folder  # switching the path re-evaluates: never a silent mix
    assert adapter.config_hash() != merged.config_hash()
    # full fine-tunes have no path to choose: their keys and config hashes are those they always had
    full = load_protocol_config(None)
    assert "lora" not in eval_settings(full, [TASK])
    assert full.config_hash() == full.with_overrides(**{"eval.lora": "merged"}).config_hash()


def test_adapter_path_needs_lora_students_on_vllm(tmp_path):
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.protocol.config import check_config

    with pytest.raises(ConfigError, match="eval.lora: 'adapter' evaluates LoRA students"):
        check_config(_config(tmp_path, backend="hf"))


# ------------------------------------------------------------------------------------------- vLLM, for real
def _samples(folder: Path) -> bytes:
    return next(folder.rglob(f"samples_{TASK}_*.jsonl")).read_bytes()


def _outputs(folder: Path) -> list[str]:
    rows = sorted((json.loads(line) for line in _samples(folder).decode().splitlines()), key=lambda r: r["doc_id"])
    return [r["filtered_resps"][0] for r in rows]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, needs_vllm):
    from regurg_bench.evaluation.lora_engine import engine_starts
    from regurg_bench.protocol.run import run_protocol

    tmp = tmp_path_factory.mktemp("lora-protocol")
    cfg = _config(tmp)
    messages: list[str] = []
    before = engine_starts()
    results = run_protocol(cfg, tmp / "run", say=messages.append)
    return cfg, tmp / "run", results, engine_starts() - before, messages


def _own_engine(record: dict, out: Path, model_args: str) -> Path:
    """Plain lm-eval on an engine of its own (what a user runs), with the step's own settings."""
    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    cfg = LORA_PROTOCOL["eval"]
    run_eval(EvalRequest(model="vllm", model_args=model_args, tasks=[TASK], limit=cfg["limit"],
                         batch_size=cfg["batch_size"], output_path=str(out), log_samples=True,
                         gen_kwargs=f"max_gen_toks={cfg['max_gen_toks']}", bootstrap_iters=0))
    return out


@pytest.mark.slow
@pytest.mark.vllm
def test_one_engine_per_base_for_every_lora_student(lora_run):
    cfg, out, results, starts, messages = lora_run
    evals = sorted(p.name for p in (out / "evals").iterdir() if p.is_dir())
    assert {e.rsplit("-", 1)[0] for e in evals} == {"real-s0", "regurg_scripted-s0", "m3_detector_scripted-s0",
                                                    "m4_unlearn_scripted-s0"}
    # one engine for the students of the base model, one for M4's (its base is the merged REGURG student)
    assert starts == 2, messages
    from regurg_bench.protocol.run import planned_steps

    assert planned_steps(cfg) == results["steps"]  # the dry run lists the evaluations in the order they ran
    assert results["steps"][-3] == "eval:m4_unlearn_scripted-s0"
    assert any("2 vLLM engine start(s) for 4 evaluated LoRA students" in m for m in messages), messages


@pytest.mark.slow
@pytest.mark.vllm
def test_adapters_on_one_engine_equal_each_adapter_on_its_own_engine(lora_run, tmp_path):
    cfg, out, results, _, _ = lora_run
    identical, outputs = 0, set()
    for folder in sorted(p for p in (out / "evals").iterdir() if p.is_dir()):
        record = json.loads((folder / "done.json").read_text(encoding="utf-8"))
        args = record["config"]["model_args"]
        assert "lora_local_path=" in args and record["settings"]["lora"] == "adapter"
        own = _own_engine(record, tmp_path / folder.name, args)
        assert _samples(own) == (folder / record["samples_files"][TASK]).read_bytes(), folder.name
        identical += 1
        outputs.add(tuple(_outputs(folder)))
    assert identical == 4
    assert len(outputs) >= 3, outputs  # the adapters change the outputs: each request went to its own adapter
