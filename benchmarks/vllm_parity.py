"""vLLM vs transformers on the same pretrained checkpoint: outputs, BLEU/chrF, generation and evaluation
throughput. Run it where vLLM is installed (the CPU build: ``bash scripts/setup_vllm.sh``, then
``.venv-vllm/bin/python benchmarks/vllm_parity.py``; on a GPU machine, ``benchmarks/gpu_check.sh``).

    python benchmarks/vllm_parity.py                                    # 64 es->en test verses, fp32
    python benchmarks/vllm_parity.py --n 400 --dtype bfloat16 --json out.json   # a GPU
    python benchmarks/vllm_parity.py --stages generate                  # skip the lm-eval part

Stages:
* ``generate``: the ``transformers`` and ``vllm`` generators translate the same verses greedily (SmolLM2-
  135M-Instruct, the embedded registry model, unless ``--model``); pairs/s and tokens/s without model
  load / engine start-up (reported apart); identical-output rate and corpus BLEU/chrF of each.
* ``eval``: ``regurg_mt_es-en`` through lm-eval's ``vllm`` and ``hf`` backends on the same verses
  (``--limit`` = ``--n``), wall time including start-up, and the vLLM backend's pairs/s against the raw
  vLLM generator's (what lm-eval's wrapper costs).
Prints this machine's fp32 matmul rate first (numbers mean little without it) and one table at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.generation import build_generator
from regurg_bench.generation.parity import compare_outputs
from regurg_bench.protocol.estimate import matmul_gflops

DIRECTION = ("es", "en")
TASK = "regurg_mt_es-en"


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def generate_stage(model: str, n: int, max_new: int, dtype: str, batch_size: int) -> dict:
    pairs = load_bible_pairs("-".join(DIRECTION), "test")[:n]
    sources, refs = [p.source for p in pairs], [p.target for p in pairs]
    out: dict = {}
    texts: dict[str, list[str]] = {}
    for kind, options in (("transformers", {"batch_size": batch_size, "num_threads": os.cpu_count()}),
                          ("vllm", {"max_model_len": 1024, **({"engine_kwargs": {"enforce_eager": True}}
                                                              if _device() == "cpu" else {})})):
        gen = build_generator(kind, model=model, dtype=dtype, max_new_tokens=max_new, **options)
        try:
            t = time.perf_counter()
            gen.generate(sources[:1], *DIRECTION)  # load the model / start the engine
            startup = time.perf_counter() - t
            t = time.perf_counter()
            results = gen.generate(sources, *DIRECTION)
            seconds = time.perf_counter() - t
        finally:
            gen.close()
        tokens = sum(r.n_tokens or 0 for r in results)
        texts[kind] = [r.text or "" for r in results]
        out[kind] = {"startup_s": round(startup, 2), "seconds": round(seconds, 2), "pairs": n,
                     "pairs_per_s": round(n / seconds, 2), "tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}
        print(f"[generate] {kind}: {out[kind]}", flush=True)
    out["parity"] = compare_outputs(texts["vllm"], texts["transformers"], refs).as_dict()
    return out


def eval_stage(model: str, n: int, max_new: int, dtype: str, batch_size: int) -> dict:
    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    out: dict = {}
    outputs: dict[str, list[str]] = {}
    refs: list[str] = []
    extra = ",max_model_len=1024" + (",enforce_eager=True" if _device() == "cpu" else "")
    for backend, args in (("hf", f"pretrained={model},dtype={dtype}"),
                          ("vllm", f"pretrained={model},dtype={dtype}{extra}")):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            results = run_eval(EvalRequest(model=backend, model_args=args, tasks=[TASK], limit=n, batch_size=batch_size,
                                           output_path=tmp, log_samples=True, gen_kwargs=f"max_gen_toks={max_new}",
                                           bootstrap_iters=0))
            seconds = time.perf_counter() - t
            rows = sorted((json.loads(line) for line in next(Path(tmp).rglob(f"samples_{TASK}_*.jsonl")).open()),
                          key=lambda r: r["doc_id"])
        outputs[backend] = [r["filtered_resps"][0] for r in rows]
        refs = [r["target"] for r in rows]
        r = results["results"][TASK]
        out[backend] = {"seconds_with_startup": round(seconds, 2), "pairs": len(rows),
                        "pairs_per_s_with_startup": round(len(rows) / seconds, 2),
                        "bleu": round(r["bleu,none"], 2), "chrf": round(r["chrf,none"], 2)}
        print(f"[eval] {backend}: {out[backend]}", flush=True)
    out["parity"] = compare_outputs(outputs["vllm"], outputs["hf"], refs).as_dict()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct", help="a checkpoint folder or an embedded model name")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--stages", default="generate,eval")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()

    from regurg_bench.training.trainer import resolve_model_spec

    model = str(resolve_model_spec(args.model) or args.model)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, device {_device()}"
    gflops = matmul_gflops("float32")
    print(f"machine: {machine}; matmul fp32 {gflops:.0f} GFLOP/s; model {model}", flush=True)
    result = {"machine": machine, "fp32_gflops": round(gflops, 1), "model": model, "n": args.n,
              "max_new_tokens": args.max_new_tokens, "dtype": args.dtype}
    stages = set(args.stages.split(","))
    if "generate" in stages:
        result["generate"] = generate_stage(model, args.n, args.max_new_tokens, args.dtype, args.batch_size)
    if "eval" in stages:
        result["eval"] = eval_stage(model, args.n, args.max_new_tokens, args.dtype, args.batch_size)
    print("\n| measure | transformers / hf | vLLM |\n|---|---|---|")
    if "generate" in result:
        g = result["generate"]
        print(f"| generation pairs/s | {g['transformers']['pairs_per_s']} | {g['vllm']['pairs_per_s']} |")
        print(f"| generation tokens/s | {g['transformers']['tokens_per_s']} | {g['vllm']['tokens_per_s']} |")
        print(f"| load / engine start (s) | {g['transformers']['startup_s']} | {g['vllm']['startup_s']} |")
        p = g["parity"]
        print(f"| generator BLEU / chrF | {p['bleu_b']:.2f} / {p['chrf_b']:.2f} | {p['bleu_a']:.2f} / {p['chrf_a']:.2f} |")
        print(f"| identical outputs (generators) | {p['identical']}/{p['n']} | |")
    if "eval" in result:
        e = result["eval"]
        print(f"| lm-eval wall s (incl. start-up) | {e['hf']['seconds_with_startup']} | {e['vllm']['seconds_with_startup']} |")
        print(f"| lm-eval BLEU / chrF | {e['hf']['bleu']} / {e['hf']['chrf']} | {e['vllm']['bleu']} / {e['vllm']['chrf']} |")
        print(f"| identical outputs (lm-eval) | {e['parity']['identical']}/{e['parity']['n']} | |")
        if "generate" in result:
            raw = result["generate"]["vllm"]
            print(f"| vllm backend vs raw vLLM (s, incl. start-up) | | {e['vllm']['seconds_with_startup']} vs "
                  f"{raw['startup_s'] + raw['seconds']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
