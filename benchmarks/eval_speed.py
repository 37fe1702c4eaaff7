"""Evaluation speed: start-up (plain `lm_eval` vs `regurg-bench eval`) and generation on real students.

**Start-up** (default): plain `lm_eval --tasks regurg_mt` vs `regurg-bench eval` on the same tiny model,
each as a fresh process (what a user types), same model, tasks, limit and generation settings, timed
`--repeats` times (median). `regurg-bench eval` does not index lm-eval's ~14k built-in task YAML when
only ours are asked for.

    python benchmarks/eval_speed.py [--limit 5] [--repeats 3] [--model DIR]

**Students** (`--run DIR`, e.g. runs/protocol/default): every student of a finished protocol run on
the full test set, in ONE process so that other jobs on the machine slow both sides alike: per student
`regurg-hf`'s generation (lm-eval's requests, batches and batch size of the run) is timed and its text
compared with the run's logged samples (which must come from lm-eval's `hf`), and for `--plain N`
students lm-eval's own `hf` generation is timed right before it (interleaved) and compared too. Printed:
seconds per student, the compute limit (2 x parameters x tokens, prompt plus generated up to the stop, at
the fp32 matmul rate measured before and after), the ratio to it, and the speed-up over plain `hf`.

    python benchmarks/eval_speed.py --run runs/protocol/default [--plain 2] [--students 27]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _time(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=5, help="documents per direction (default 5)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", help="HF model dir (default: a tiny untrained Llama built here)")
    parser.add_argument("--run", type=Path, help="a finished protocol run: benchmark its students' generation")
    parser.add_argument("--plain", type=int, default=2, help="with --run: students also timed with plain hf")
    parser.add_argument("--students", type=int, default=0, help="with --run: at most this many (0: all)")
    args = parser.parse_args()
    if args.run is not None:
        students_benchmark(args.run, args.plain, args.students)
        return
    startup_benchmark(args)


def startup_benchmark(args: argparse.Namespace) -> None:

    work = tempfile.mkdtemp(prefix="regurg-eval-speed-")
    model = args.model
    if model is None:
        from regurg_bench.corpora.bible import load_bible_pairs
        from regurg_bench.models.scratch import build_scratch_model

        texts = [t for p in load_bible_pairs("en-es", "train")[:2000] for t in (p.source, p.target)]
        model = str(build_scratch_model(texts, Path(work) / "model", preset="test"))

    bindir = Path(sys.executable).parent
    common = ["--model", "hf", "--model_args", f"pretrained={model},dtype=float32", "--tasks", "regurg_mt",
              "--limit", str(args.limit), "--batch_size", "4", "--gen_kwargs", "max_gen_toks=24"]
    lm_eval = [shutil.which("lm_eval", path=str(bindir)) or "lm_eval", *common, "--device", "cpu"]
    ours = [shutil.which("regurg-bench", path=str(bindir)) or "regurg-bench", "eval", *common]

    times: dict[str, list[float]] = {"lm_eval": [], "regurg-bench eval": []}
    _time(lm_eval, work)  # warm the OS file cache and the corpus cache once, untimed
    for _ in range(args.repeats):
        times["lm_eval"].append(_time(lm_eval, work))
        times["regurg-bench eval"].append(_time(ours, work))

    print(f"tiny model, regurg_mt (4 directions), limit {args.limit}, {args.repeats} repeats, median wall s")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, values in times.items():
        print(f"  {name:<18} {med[name]:6.2f} s   (runs: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  speed-up (lm_eval / regurg-bench eval): {med['lm_eval'] / med['regurg-bench eval']:.2f}x")
    shutil.rmtree(work, ignore_errors=True)


# -- generation on a run's students ---------------------------------------------------------------------

def _machine() -> str:
    from regurg_bench.protocol.estimate import machine_id

    return f"{machine_id()}, {os.cpu_count()} CPUs"


def _evaluations(run: Path, limit: int) -> list[dict]:
    """The run's evaluations (done.json records) whose samples came from lm-eval's plain hf model."""
    import json

    out = []
    for marker in sorted(run.glob("evals/*/done.json")):
        record = json.loads(marker.read_text(encoding="utf-8"))
        results = json.loads((marker.parent / record["results_file"]).read_text(encoding="utf-8"))
        if results["config"]["model"] != "hf":
            sys.exit(f"{marker.parent}: its samples come from {results['config']['model']!r}, not lm-eval's hf: "
                     "they are no reference (run the protocol with REGURG_BENCH_PLAIN_HF=1 for one)")
        record["folder"], record["lm_eval_config"] = marker.parent, results["config"]
        out.append(record)
    return out[:limit] if limit else out


def _requests(task_name: str):
    from lm_eval.tasks import get_task_dict

    from regurg_bench.evaluation.runner import build_task_manager

    task = get_task_dict([task_name], build_task_manager([task_name]))[task_name]
    task.build_all_requests(limit=None, rank=0, world_size=1)
    return task.instances


def _logged(folder: Path, rel: str) -> dict[int, str]:
    import json

    rows = [json.loads(line) for line in (folder / rel).read_text(encoding="utf-8").splitlines()]
    return {row["doc_id"]: row["filtered_resps"][0] for row in rows}


def _generate(cls, model_dir: str, batch_size: int, requests) -> tuple[list[str], float, object]:
    lm = cls(pretrained=model_dir, dtype="float32", batch_size=batch_size, device="cpu")
    start = time.perf_counter()
    out = lm.generate_until(requests, disable_tqdm=True)
    return out, time.perf_counter() - start, lm


def _compute_limit_s(lm, requests, outputs: list[str], gflops: float) -> tuple[float, int]:
    """2 x parameters x (prompt + generated) tokens at the measured matmul rate; and the token count."""
    tok = lm.tokenizer
    params = sum(p.numel() for p in lm.model.parameters())  # tied embedding counted once: the lm_head matmul
    tokens = sum(len(tok.encode(r.args[0])) + len(tok.encode(o, add_special_tokens=False)) + 1
                 for r, o in zip(requests, outputs, strict=True))
    return 2 * params * tokens / (gflops * 1e9), tokens


def students_benchmark(run: Path, plain: int, limit: int) -> None:
    """Time regurg-hf (and plain hf for the first ``plain`` students) on every student of ``run``."""
    from lm_eval.models.huggingface import HFLM

    from regurg_bench.evaluation.fast_hf import FastHFLM
    from regurg_bench.protocol.estimate import matmul_gflops

    evaluations = _evaluations(run, limit)
    gflops = [matmul_gflops("float32")]
    print(f"machine: {_machine()}; fp32 matmul {gflops[0]:.0f} GFLOP/s (1024^3, best of 5)")
    rows, identical = [], 0
    for i, ev in enumerate(evaluations):
        (task, rel), = ev["samples_files"].items()
        requests, reference = _requests(task), _logged(ev["folder"], rel)
        model_dir = ev["lm_eval_config"]["model_args"].split("pretrained=")[1].split(",")[0]
        batch = int(ev["lm_eval_config"]["batch_size"])
        plain_s = None
        if i < plain:
            theirs, plain_s, _ = _generate(HFLM, model_dir, batch, requests)
            assert all(t == reference[r.doc_id] for t, r in zip(theirs, requests, strict=True)), "plain hf differs"
        ours, fast_s, lm = _generate(FastHFLM, model_dir, batch, requests)
        same = sum(o == reference[r.doc_id] for o, r in zip(ours, requests, strict=True))
        identical += same == len(requests)
        limit_s, tokens = _compute_limit_s(lm, requests, ours, gflops[-1])
        rows.append((ev["student"], fast_s, limit_s, plain_s))
        print(f"{ev['student']:<22} regurg-hf {fast_s:6.2f} s  limit {limit_s:5.2f} s ({tokens} tokens) "
              f"x{fast_s / limit_s:5.1f}" + (f"  plain hf {plain_s:6.2f} s  speed-up {plain_s / fast_s:4.1f}x"
                                              if plain_s else "") + f"  identical {same}/{len(requests)}  "
              f"batches together <= {lm.decode_stats.get('most_batches')}, alone {lm.decode_stats.get('alone_batches')}, "
              f"compacted {lm.decode_stats.get('compactions')}",
              flush=True)
        gflops.append(matmul_gflops("float32"))
    fast = [r[1] for r in rows]
    print(f"\n{len(rows)} students, text identical to the run's hf samples: {identical}/{len(rows)}")
    print(f"regurg-hf generation: mean {statistics.mean(fast):.2f} s, median {statistics.median(fast):.2f} s per "
          f"student; x{statistics.mean(r[1] / r[2] for r in rows):.1f} the compute limit on average")
    timed = [r for r in rows if r[3]]
    if timed:
        print(f"plain hf generation: {statistics.mean(r[3] for r in timed):.2f} s on {len(timed)} students; speed-up "
              f"{statistics.mean(r[3] / r[1] for r in timed):.1f}x (same process, interleaved)")
    print(f"fp32 matmul GFLOP/s over the run: min {min(gflops):.0f}, max {max(gflops):.0f} "
          "(a spread means other jobs shared the cores)")


if __name__ == "__main__":
    main()
