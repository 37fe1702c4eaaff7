"""Recursive generations: the student trained on generation k writes the targets of generation k+1.

Two variants (Shumailov et al. 2024; Gerstgrasser et al. 2024):

* ``replace``: teacher k+1 is trained only on generation k's pairs;
* ``accumulate``: teacher k+1 is trained on the real pairs plus every generation so far.

Generation 1's teacher is trained on the matched ``real`` split. Every generation rewrites the targets
of the same sampled sources (same ids), so ``recursive_<mode>_gen<k>`` is matched to ``real``. Teachers
are trained with :func:`regurg_bench.training.train` (deterministic, resumable: a finished teacher is
not retrained) and write through the generation cache (a re-run only looks results up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.builders.config import BuildConfig
from regurg_bench.corpora.base import Pair, PairFingerprint
from regurg_bench.corpora.lines import read_json_objects


def _read_pairs(path: Path) -> list[Pair]:
    rows = read_json_objects(path)
    return [Pair(r["id"], r["source"], r["target"], r["src_lang"], r["tgt_lang"]) for r in rows]


def _write_condition(out: Path, name: str, rows: list[tuple[Pair, str, str | None]]) -> dict[str, Any]:
    """Write rows of (pair, origin, generator signature hash or None); return the manifest entry."""
    fp = PairFingerprint()
    generated = 0
    with atomic_write(out / f"{name}.jsonl") as handle:
        for pair, origin, sig in rows:
            generated += origin != "human"
            handle.write(json.dumps({"id": pair.id, "source": pair.source, "target": pair.target,
                                     "src_lang": pair.src_lang, "tgt_lang": pair.tgt_lang, "condition": name,
                                     "origin": origin, "generator_signature": sig}, ensure_ascii=False) + "\n")
            fp.update(pair)
    return {"file": f"{name}.jsonl", "pairs": fp.count, "generated_pairs": generated,
            "fingerprint": fp.hexdigest()}


def build_recursive_generations(config: BuildConfig, out: Path, *, progress: bool = True
                                ) -> tuple[dict[str, dict], dict[str, dict]]:
    """Train the teachers, write every generation; return (manifest conditions, generator signatures)."""
    from regurg_bench.assets import cache_dir
    from regurg_bench.generation.base import build_generator
    from regurg_bench.generation.cache import GenerationCache
    from regurg_bench.generation.runner import generate_targets
    from regurg_bench.training import TrainConfig, train

    assert config.recursive is not None
    rec = config.recursive
    real = _read_pairs(out / "real.jsonl")
    cache = GenerationCache(cache_dir() / "generations")
    conditions: dict[str, dict] = {}
    signatures: dict[str, dict] = {}
    for mode in rec.modes:
        train_file = out / "real.jsonl"
        pool: list[tuple[Pair, str, str | None]] = [(p, "human", None) for p in real]
        for k in range(1, rec.generations + 1):
            teacher_dir = out / "recursive" / mode / f"teacher_{k}"
            train(TrainConfig(**({"seed": config.seed, "progress": progress} | rec.train),
                              split=str(train_file), out=str(teacher_dir)))
            generator = build_generator("transformers", model=str(teacher_dir), **rec.generate)
            origin = f"teacher_{mode}_{k}"
            try:
                signature = generator.signature()
                results = list(generate_targets(generator, real, cache, batch_size=config.batch_size,
                                                progress=progress, description=f"{mode} generation {k}"))
            finally:
                generator.close()
            signatures[origin] = signature.to_dict()
            generated = [(Pair(p.id, p.source, r.target, p.src_lang, p.tgt_lang), origin, signature.hash)
                         for p, r in results if r.ok]
            name = f"recursive_{mode}_gen{k}"
            conditions[name] = {"kind": "recursive", "mode": mode, "generation": k, "generator": origin,
                                "teacher": str(teacher_dir.relative_to(out)),
                                "dropped_failed_generation": len(results) - len(generated),
                                **_write_condition(out, name, generated)}
            if mode == "replace":
                train_file = out / f"{name}.jsonl"
            else:
                # The pool repeats sources, so its ids carry the generation: "<id>#<origin>".
                pool += [(Pair(f"{p.id}#{o}", p.source, p.target, p.src_lang, p.tgt_lang), o, h)
                         for p, o, h in generated]
                pool_name = f"recursive_accumulate_pool{k}"
                conditions[pool_name] = {"kind": "recursive_pool", "mode": mode, "generation": k,
                                         "generator": None,
                                         **_write_condition(out, pool_name, pool)}
                train_file = out / f"{pool_name}.jsonl"
    return conditions, signatures
