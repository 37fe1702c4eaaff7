"""Wall time of plain `lm_eval --tasks regurg_mt` vs `regurg-bench eval` on the same tiny model.

Both run as fresh processes (what a user types), same model, tasks, limit and generation settings;
each is timed `--repeats` times and the median is reported. The difference is start-up work:
`regurg-bench eval` does not index lm-eval's ~14k built-in task YAML when only ours are asked for.

    python benchmarks/eval_speed.py [--limit 5] [--repeats 3] [--model DIR]
"""

from __future__ import annotations

import argparse
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
    args = parser.parse_args()

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


if __name__ == "__main__":
    main()
