"""Where a LoRA student's evaluation goes on vLLM's CPU build: per-step cost with and without an adapter,
under vLLM's default core binding and with every core given to the model.

    .venv-vllm/bin/python benchmarks/vllm_cpu_step.py [--model smollm2-135m-instruct] [--requests 8] [--tokens 48]

paper-smoke evaluates each student on 8 test sentences of <= 48 new tokens as a LoRA adapter on one shared
engine (``eval.lora: adapter``), and that takes ~15 s per student on 2 cores although the engine is already
up. This prints, per setting (each in a fresh process, the engine started once): the engine start, then the
same 8 greedy requests twice with a rank-16 adapter on every linear layer (random, so every request runs to
the token cap) and twice on the base model, in seconds and seconds per decoding step.

Settings: ``vLLM auto`` (vLLM's own binding: on a 2-core machine the model's OpenMP threads on core 0, core 1
reserved for the engine's own loop: one thread), ``all cores`` (``VLLM_CPU_OMP_THREADS_BIND=0-<n-1>``,
``VLLM_CPU_NUM_OF_RESERVED_CPU=0``), both with vLLM's engine-core and worker processes, and ``in process``
(all cores, ``VLLM_ENABLE_V1_MULTIPROCESSING=0``: the engine in the calling process), which regurg-bench sets
by default on machines with at most 4 CPUs (``vllm_backend.cpu_engine_defaults``). A change of binding
changes the thread count, hence the fp32 bits of the outputs; ``in process`` should give ``all cores``'s
texts exactly (printed). The machine line (CPU, fp32 matmul rate) comes first.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time


def main(model, adapter, n, tokens):
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    t = time.perf_counter()
    llm = LLM(model, dtype="float32", enable_lora=True, max_lora_rank=16, max_model_len=2048, seed=1234)
    result = {"engine_start_s": time.perf_counter() - t}
    prompts = [f"Spanish: En el principio creó Dios los cielos y la tierra ({i}), y la tierra estaba desordenada "
               "y vacía.\nEnglish:" for i in range(n)]
    params = SamplingParams(temperature=0, max_tokens=tokens, stop=["\n"])
    for name, lora in (("adapter", LoRARequest("a", 1, adapter)), ("base", None)):
        runs = []
        for _ in range(2):
            t = time.perf_counter()
            out = llm.generate(prompts, params, lora_request=lora, use_tqdm=False)
            runs.append((time.perf_counter() - t, max(len(o.outputs[0].token_ids) for o in out)))
        result[name] = {"s": runs[-1][0], "steps": runs[-1][1], "first_s": runs[0][0],
                        "texts": [o.outputs[0].text for o in out]}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
"""

ADAPTER = r"""
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM
torch.manual_seed(0)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(sys.argv[1]),
                       LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM",
                                  init_lora_weights=False))
model.save_pretrained(sys.argv[2])
"""


def machine_line() -> str:
    from regurg_bench.protocol.estimate import machine_id, matmul_gflops

    return f"machine: {machine_id()}, {os.cpu_count()} cores; matmul fp32 {matmul_gflops('float32'):.0f} GFLOP/s (torch)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="an embedded model name or a checkpoint dir")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()
    from regurg_bench.generation.vllm_backend import _resolve_model, cpu_engine_defaults

    print(machine_line(), flush=True)
    cpu_engine_defaults()
    model = _resolve_model(args.model)
    cores = os.cpu_count() or 1
    base_env = {k: v for k, v in os.environ.items()
                if k not in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU", "VLLM_ENABLE_V1_MULTIPROCESSING")}
    all_cores = {"VLLM_CPU_OMP_THREADS_BIND": f"0-{cores - 1}", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    settings = {"vLLM auto": base_env | {"VLLM_CPU_OMP_THREADS_BIND": "auto", "VLLM_ENABLE_V1_MULTIPROCESSING": "1"},
                "all cores": base_env | all_cores | {"VLLM_ENABLE_V1_MULTIPROCESSING": "1"},
                "in process": base_env | all_cores | {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}}
    texts = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = os.path.join(tmp, "adapter")
        subprocess.run([sys.executable, "-c", ADAPTER, model, adapter], check=True, capture_output=True)
        child = os.path.join(tmp, "child.py")
        with open(child, "w", encoding="utf-8") as f:
            f.write(CHILD)
        for name, env in settings.items():
            proc = subprocess.run([sys.executable, child, model, adapter, str(args.requests), str(args.tokens)],
                                  env=env, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                sys.exit(f"{name}: the child failed ({proc.returncode})\n{proc.stderr[-3000:]}")
            r = json.loads(line[len("RESULT "):])
            a, b = r["adapter"], r["base"]
            texts[name] = (a["texts"], b["texts"])
            print(f"{name:>13}: engine start {r['engine_start_s']:5.1f} s | adapter {a['s']:5.2f} s for {a['steps']} steps "
                  f"({a['s'] / a['steps'] * 1000:4.0f} ms/step, first call {a['first_s']:5.2f} s) | base {b['s']:5.2f} s "
                  f"for {b['steps']} steps ({b['s'] / b['steps'] * 1000:4.0f} ms/step)", flush=True)
    same = texts["in process"] == texts["all cores"]
    print(f"in process vs all cores: {'identical' if same else 'DIFFERENT'} texts "
          f"({2 * args.requests} requests, adapter and base)", flush=True)


if __name__ == "__main__":
    main()
