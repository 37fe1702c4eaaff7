"""Build matched real and regurgitated training splits from a :class:`BuildConfig`.

Three streaming passes over the corpus:

1. hash every id (:mod:`regurg_bench.builders.selection`) and fix the sample's threshold — 16 bytes
   per corpus pair of memory;
2. stream the sampled pairs in batches through every generator (behind the generation cache) and note
   failures; then derive exact thresholds for ladder rungs, fractions of real data and mixes over the
   matched pairs;
3. stream them again (generators now answer from their caches) and write each pair into every
   condition that selects it.

A pair whose generation failed for *any* generator is dropped from *every* condition, so all
conditions keep identical sources and ids (recorded in the manifest). Files are written atomically and
the manifest last; a build whose manifest matches the config hash is not redone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from regurg_bench.atomic import atomic_write
from regurg_bench.builders.config import BuildConfig
from regurg_bench.builders.selection import threshold_for_count, unit_hash
from regurg_bench.corpora.base import CorpusSource, Pair, PairFingerprint
from regurg_bench.versions import EVAL_PACKAGES, package_versions

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


class TargetGenerator(Protocol):
    """What the builder needs of a generator (see :mod:`regurg_bench.builders.targets`)."""

    name: str

    def signature(self) -> dict[str, Any]: ...

    def generate(self, pairs: list[Pair]) -> list[str | None]:
        """One target per pair, or ``None`` where generation failed (after the cache's retries)."""


@dataclass
class Condition:
    """One training split: which sampled pairs it holds and whose targets they carry."""

    name: str
    kind: str  # matched | mix | ladder | fraction
    generator: str | None = None  # generated targets come from this generator
    size_threshold: float = float("inf")  # keep pairs with u_sample < threshold (ladders, fractions)
    mix_threshold: float | None = None  # mixes: pairs with u_mix < threshold get generated targets
    params: dict[str, Any] = field(default_factory=dict)

    def wants(self, u_sample: float) -> bool:
        return u_sample < self.size_threshold

    def uses_generated(self, u_mix: float) -> bool:
        if self.kind == "mix":
            return u_mix < self.mix_threshold
        return self.generator is not None


def open_corpus(config: BuildConfig) -> CorpusSource:
    from regurg_bench.corpora.spec import corpus_from_spec

    return corpus_from_spec(config.corpus, config.src_lang, config.tgt_lang, **config.corpus_options)


def plan_conditions(config: BuildConfig, u_sample_in: np.ndarray, u_mix_in: np.ndarray) -> list[Condition]:
    """All conditions, with thresholds computed over the sampled pairs' hash values."""
    n = len(u_sample_in)
    conds = [Condition("real", "matched")]
    conds += [Condition(f"regurg_{g}", "matched", generator=g) for g in config.generators]
    if config.mixes:
        for g in config.mixes.generators or list(config.generators):
            for ratio in config.mixes.ratios:
                k = round(ratio * n)
                conds.append(Condition(f"mix_{g}_{round(ratio * 100):03d}", "mix", generator=g,
                                       mix_threshold=threshold_for_count(u_mix_in, k),
                                       params={"ratio": ratio, "generated_pairs_planned": k}))
    if config.ladder:
        top = min(config.ladder.max or n, n)
        for size in range(config.ladder.step, top, config.ladder.step):
            t = threshold_for_count(u_sample_in, size)
            conds.append(Condition(f"ladder_real_{size}", "ladder", size_threshold=t, params={"size": size}))
            conds += [Condition(f"ladder_regurg_{g}_{size}", "ladder", generator=g, size_threshold=t,
                                params={"size": size}) for g in config.generators]
    for fraction in config.fractions_of_real:
        k = round(fraction * n)
        conds.append(Condition(f"fraction_real_{round(fraction * 100):03d}", "fraction",
                               size_threshold=threshold_for_count(u_sample_in, k),
                               params={"fraction": fraction, "size": k}))
    return conds


def _first_pass(corpus: CorpusSource, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Hash every id (sample order and mix order), checking ids are unique on the way."""
    u_sample, u_mix = [], []
    for pair in corpus.iter_pairs():
        u_sample.append(unit_hash(seed, "sample", pair.id))
        u_mix.append(unit_hash(seed, "mix", pair.id))
    us = np.asarray(u_sample, dtype=np.float64)
    if len(np.unique(us)) != len(us):
        raise ValueError("the corpus has duplicate ids; matched splits need unique ids")
    return us, np.asarray(u_mix, dtype=np.float64), len(us)


def _batches(corpus: CorpusSource, seed: int, t_sample: float, size: int) -> Iterator[list[tuple[Pair, float, float]]]:
    batch = []
    for pair in corpus.iter_pairs():
        us = unit_hash(seed, "sample", pair.id)
        if us < t_sample:
            batch.append((pair, us, unit_hash(seed, "mix", pair.id)))
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch


def _row(pair: Pair, target: str, condition: str, origin: str, signature: str | None) -> str:
    return json.dumps({"id": pair.id, "source": pair.source, "target": target, "src_lang": pair.src_lang,
                       "tgt_lang": pair.tgt_lang, "condition": condition, "origin": origin,
                       "generator_signature": signature}, ensure_ascii=False) + "\n"


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / MANIFEST
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _generate_all(corpus: CorpusSource, config: BuildConfig, generators: dict[str, TargetGenerator],
                  t_sample: float, bar: Callable[[int], Any]) -> tuple[dict[str, list[str]], list[float], list[float]]:
    """Pass 2: every generator on every sampled source. Returns the ids each generator failed on, and the
    sample and mix hashes of the pairs every generator answered (the matched pairs)."""
    dropped: dict[str, list[str]] = {g: [] for g in config.generators}
    kept_u_sample, kept_u_mix = [], []
    for batch in _batches(corpus, config.seed, t_sample, config.batch_size):
        outputs = {g: generators[g].generate([p for p, _, _ in batch]) for g in config.generators}
        for i, (pair, us, um) in enumerate(batch):
            failed = [g for g in config.generators if not outputs[g][i]]
            for g in failed:
                dropped[g].append(pair.id)
            if not failed:
                kept_u_sample.append(us)
                kept_u_mix.append(um)
        bar(len(batch))
    return dropped, kept_u_sample, kept_u_mix


def _write_conditions(out: Path, corpus: CorpusSource, config: BuildConfig, generators: dict[str, TargetGenerator],
                      conditions: list[Condition], failed_ids: set[str], sig_hash: dict[str, Any], t_sample: float,
                      bar: Callable[[int], Any]) -> tuple[dict[str, PairFingerprint], dict[str, int]]:
    """Pass 3: write one JSONL per condition (atomically); its fingerprint and count of generated targets."""
    fingerprints = {c.name: PairFingerprint() for c in conditions}
    generated_counts = dict.fromkeys(fingerprints, 0)
    with contextlib.ExitStack() as stack:
        files = {c.name: stack.enter_context(atomic_write(out / f"{c.name}.jsonl")) for c in conditions}
        for batch in _batches(corpus, config.seed, t_sample, config.batch_size):
            batch = [item for item in batch if item[0].id not in failed_ids]
            outputs = {g: generators[g].generate([p for p, _, _ in batch]) for g in config.generators}
            for i, (pair, us, um) in enumerate(batch):
                for cond in conditions:
                    if not cond.wants(us):
                        continue
                    if cond.uses_generated(um):
                        target, origin = outputs[cond.generator][i], cond.generator
                        if not target:  # a cache that forgot a result would break matching
                            raise RuntimeError(f"generator {origin} gave no target for {pair.id} on re-read")
                        generated_counts[cond.name] += 1
                    else:
                        target, origin = pair.target, "human"
                    files[cond.name].write(_row(pair, target, cond.name, origin, sig_hash.get(origin)))
                    fingerprints[cond.name].update(Pair(pair.id, pair.source, target, pair.src_lang,
                                                        pair.tgt_lang))
            bar(len(batch))
    return fingerprints, generated_counts


def build_splits(config: BuildConfig, out_dir: str | Path, generators: dict[str, TargetGenerator],
                 *, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Build every condition of ``config`` into ``out_dir``; return the manifest."""
    out = Path(out_dir)
    config_hash = config.config_hash()
    existing = read_manifest(out)
    if existing and existing.get("config_hash") == config_hash and not force:
        log.info("%s is up to date (config %s)", out, config_hash)
        return existing | {"up_to_date": True}
    missing = sorted(set(config.generators) - set(generators))
    if missing:
        raise ValueError(f"no generator object given for {missing}")
    started = time.perf_counter()
    # A stale manifest must not vouch for files this build is about to replace.
    (out / MANIFEST).unlink(missing_ok=True)
    corpus = open_corpus(config)
    u_sample, u_mix, total = _first_pass(corpus, config.seed)
    t_sample = threshold_for_count(u_sample, config.size if config.size else total)
    n_sampled = int((u_sample < t_sample).sum())
    del u_sample, u_mix

    signatures = {g: generators[g].signature() for g in config.generators}
    sig_hash = {g: s.get("hash") for g, s in signatures.items()}
    out.mkdir(parents=True, exist_ok=True)

    # Pass 2: generate every sampled source (results land in the generators' caches); note failures.
    dropped, kept_u_sample, kept_u_mix = _generate_all(corpus, config, generators, t_sample,
                                                       _progress(progress, n_sampled, "generating targets"))
    failed_ids = {i for ids in dropped.values() for i in ids}
    # Thresholds over the matched pairs only, so ladder rungs, fractions and mixes have exact sizes.
    conditions = plan_conditions(config, np.asarray(kept_u_sample), np.asarray(kept_u_mix))
    del kept_u_sample, kept_u_mix

    # Pass 3: write every condition (generators answer from their caches now).
    fingerprints, generated_counts = _write_conditions(out, corpus, config, generators, conditions, failed_ids,
                                                       sig_hash, t_sample,
                                                       _progress(progress, n_sampled, "writing splits"))
    conditions_info = {
        c.name: {"kind": c.kind, "generator": c.generator, **c.params, "file": f"{c.name}.jsonl",
                 "pairs": fingerprints[c.name].count, "generated_pairs": generated_counts[c.name],
                 "fingerprint": fingerprints[c.name].hexdigest()}
        for c in conditions}
    if config.recursive is not None:
        from regurg_bench.builders.recursive import build_recursive_generations

        recursive_info, recursive_signatures = build_recursive_generations(config, out, progress=progress)
        conditions_info |= recursive_info
        signatures |= recursive_signatures
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "name": config.name,
        "config": config.model_dump(mode="json"),
        "config_hash": config_hash,
        "corpus": corpus.provenance(),
        "corpus_pairs": total,
        "sampled": n_sampled,
        "matched": fingerprints["real"].count,
        "dropped_failed_generation": {g: {"count": len(ids), "ids": ids[:100]} for g, ids in dropped.items()},
        "generators": signatures,
        "conditions": conditions_info,
        "versions": package_versions(*EVAL_PACKAGES),
    }
    if config.write_hf:
        _write_hf(out, list(conditions_info))
    _write_card(out, manifest)
    with atomic_write(out / MANIFEST) as handle:  # last: its presence means the build is complete
        json.dump(manifest, handle, indent=2, sort_keys=True, ensure_ascii=False)
        handle.write("\n")
    log.info("built %d conditions in %.1f s", len(conditions), time.perf_counter() - started)
    return manifest


def _progress(enabled: bool, total: int, desc: str):
    if not enabled:
        return lambda n: None
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=desc, unit="pair")
    return bar.update


def _write_hf(out: Path, names: list[str]) -> None:
    """A ``DatasetDict`` (one split per condition) saved with ``save_to_disk`` into ``out/hf``.

    Built from the JSONL files by Arrow's streaming JSON reader, so memory stays bounded.
    """
    import shutil
    import tempfile

    import datasets

    with tempfile.TemporaryDirectory(dir=out, prefix=".hf-cache-") as cache:
        dd = datasets.DatasetDict({
            name: datasets.Dataset.from_json(str(out / f"{name}.jsonl"), cache_dir=cache,
                                             features=_features())
            for name in names})
        tmp = out / ".hf.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        dd.save_to_disk(str(tmp))
        shutil.rmtree(out / "hf", ignore_errors=True)
        tmp.rename(out / "hf")


def _features():  # built lazily: datasets is a heavy import
    import datasets

    string = datasets.Value("string")
    return datasets.Features({k: string for k in ("id", "source", "target", "src_lang", "tgt_lang",
                                                  "condition", "origin", "generator_signature")})


COLUMN_PROVENANCE = {
    "id": "stable id from the corpus (identical across all conditions of a build)",
    "source": "source sentence from the corpus (human-written)",
    "target": "human reference from the corpus (origin=human) or the output of the named generator",
    "src_lang / tgt_lang": "language codes of source and target",
    "condition": "the split this row belongs to (real, regurg_<g>, mix_<g>_<pct>, ladder_..., fraction_...)",
    "origin": "'human' or the generator name that wrote the target",
    "generator_signature": "hash of the generator signature (kind, model, prompt, decoding, versions); null for human",
}


def _write_card(out: Path, manifest: dict[str, Any]) -> None:
    lines = [f"# regurg-bench splits: {manifest['name']}", "",
             f"Config hash `{manifest['config_hash']}`; corpus `{manifest['config']['corpus']}` "
             f"({manifest['corpus_pairs']} pairs, {manifest['sampled']} sampled, {manifest['matched']} matched "
             "after dropping failed generations).", "", "## Conditions", "",
             "| condition | kind | pairs | generated | fingerprint |", "| --- | --- | ---: | ---: | --- |"]
    for name, c in manifest["conditions"].items():
        lines.append(f"| {name} | {c['kind']} | {c['pairs']} | {c['generated_pairs']} | `{c['fingerprint']}` |")
    lines += ["", "## Columns", "", *(f"- `{k}`: {v}" for k, v in COLUMN_PROVENANCE.items()), "",
              "## Generators", ""]
    for name, sig in manifest["generators"].items():
        lines.append(f"- **{name}**: `{json.dumps(sig, sort_keys=True)}`")
    lines += ["", "## Config", "", "```json", json.dumps(manifest["config"], indent=2, sort_keys=True), "```", ""]
    with atomic_write(out / "README.md") as handle:
        handle.write("\n".join(lines))
