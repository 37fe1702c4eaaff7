"""Matched splits: identical sources and ids, exact nested sizes, determinism, streaming memory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from regurg_bench.builders.build import build_splits
from regurg_bench.builders.config import (
    BuildConfig,
    ConfigError,
    GeneratorConfig,
    LadderConfig,
    MixConfig,
    load_build_config,
)
from regurg_bench.builders.targets import make_target_generators


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def config(tiny_model_dir) -> BuildConfig:
    gen = GeneratorConfig(kind="transformers", options={"model": str(tiny_model_dir), "max_new_tokens": 6,
                                                        "batch_size": 40, "dtype": "float32"})
    return BuildConfig(name="test", seed=3, corpus="bible:en-es:dev", size=120, generators={"tiny": gen},
                       mixes=MixConfig(ratios=[0.0, 0.25, 0.5, 1.0]), ladder=LadderConfig(step=40),
                       fractions_of_real=[0.25, 0.5], batch_size=40)


@pytest.fixture(scope="module")
def built(config, tmp_path_factory) -> tuple[Path, dict, Path]:
    cache = tmp_path_factory.mktemp("gen-cache")
    out = tmp_path_factory.mktemp("splits")
    manifest = build_splits(config, out, make_target_generators(config, cache), progress=False)
    return out, manifest, cache


def test_real_and_regurgitated_share_sources_and_ids(built):
    out, manifest, _ = built
    real, regurg = _rows(out / "real.jsonl"), _rows(out / "regurg_tiny.jsonl")
    assert len(real) == manifest["matched"] > 0
    assert [(r["id"], r["source"]) for r in real] == [(r["id"], r["source"]) for r in regurg]
    assert {r["origin"] for r in real} == {"human"} and {r["origin"] for r in regurg} == {"tiny"}
    assert all(r["target"].strip() for r in regurg), "an empty generation was written as a target"
    dropped = manifest["dropped_failed_generation"]["tiny"]["count"]
    assert manifest["matched"] + dropped == manifest["sampled"] == 120


def test_mix_ladder_and_fraction_sizes_are_exact_and_nested(built):
    out, manifest, _ = built
    n = manifest["matched"]
    generated = {}
    for ratio in (0, 25, 50, 100):
        rows = _rows(out / f"mix_tiny_{ratio:03d}.jsonl")
        assert len(rows) == n
        generated[ratio] = {r["id"] for r in rows if r["origin"] == "tiny"}
        assert len(generated[ratio]) == round(ratio / 100 * n)
    assert generated[0] <= generated[25] <= generated[50] <= generated[100]
    rung40, rung80 = ({r["id"] for r in _rows(out / f"ladder_real_{k}.jsonl")} for k in (40, 80))
    assert len(rung40) == 40 and len(rung80) == 80 and rung40 < rung80
    assert [r["id"] for r in _rows(out / "ladder_regurg_tiny_40.jsonl")] == \
        [r["id"] for r in _rows(out / "ladder_real_40.jsonl")]
    quarter = _rows(out / "fraction_real_025.jsonl")
    assert len(quarter) == round(0.25 * n) and {r["origin"] for r in quarter} == {"human"}


def test_same_config_and_seed_give_byte_identical_files(built, config, tmp_path):
    out, manifest, cache = built
    again = build_splits(config, tmp_path, make_target_generators(config, cache), progress=False)
    for name in manifest["conditions"]:
        assert (tmp_path / f"{name}.jsonl").read_bytes() == (out / f"{name}.jsonl").read_bytes(), name
    assert (tmp_path / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    assert again["config_hash"] == manifest["config_hash"]


def test_other_seed_samples_other_sources(config, built, tmp_path):
    out, manifest, cache = built
    other = config.model_copy(update={"seed": 4, "generators": {}, "mixes": None, "ladder": None})
    build_splits(other, tmp_path, {}, progress=False)
    assert {r["id"] for r in _rows(tmp_path / "real.jsonl")} != {r["id"] for r in _rows(out / "real.jsonl")}


def test_rerun_is_a_no_op_and_fingerprints_match_content(built, config):
    out, manifest, cache = built
    before = (out / "real.jsonl").stat().st_mtime_ns
    again = build_splits(config, out, make_target_generators(config, cache), progress=False)
    assert again["up_to_date"] is True
    assert (out / "real.jsonl").stat().st_mtime_ns == before


def test_hf_dataset_dict_has_every_condition(built):
    import datasets

    out, manifest, _ = built
    dd = datasets.load_from_disk(str(out / "hf"))
    assert set(dd) == set(manifest["conditions"])
    for name, info in manifest["conditions"].items():
        assert dd[name].num_rows == info["pairs"]
    assert dd["regurg_tiny"][0]["generator_signature"] == manifest["generators"]["tiny"]["hash"]
    card = (out / "README.md").read_text()
    assert "## Columns" in card and manifest["config_hash"] in card


def test_failed_generations_are_dropped_from_every_condition(config, built, tmp_path):
    _, _, cache = built
    gens = make_target_generators(config, cache)
    inner = gens["tiny"]

    class FailEveryFifth:  # fault injection over the real generator
        name = "tiny"

        def signature(self):
            return inner.signature()

        def generate(self, pairs):
            outs = inner.generate(pairs)
            return [None if int(p.id.rsplit(".", 1)[1]) % 5 == 0 else o for p, o in zip(pairs, outs, strict=True)]

    manifest = build_splits(config, tmp_path, {"tiny": FailEveryFifth()}, progress=False)
    bad = [r["id"] for name in manifest["conditions"] for r in _rows(tmp_path / f"{name}.jsonl")
           if int(r["id"].rsplit(".", 1)[1]) % 5 == 0]
    assert bad == []
    assert manifest["dropped_failed_generation"]["tiny"]["count"] > 0


def test_config_errors_name_the_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"size": 10, "colour": "red", "mixes": {"ratios": [1.5]}}))
    with pytest.raises(ConfigError) as info:
        load_build_config(path)
    message = str(info.value)
    assert "c.yaml" in message and "colour" in message and "mixes.ratios" in message
    path.write_text("mixes: {generators: [nope]}\n")
    with pytest.raises(ConfigError, match="unknown generators"):
        load_build_config(path)


def test_example_config_is_valid():
    example = Path(__file__).parents[1] / "regurg_bench" / "builders" / "example_config.yaml"
    assert load_build_config(example).generators["apertium"].kind == "apertium"


@pytest.mark.slow
def test_one_million_pairs_stream_with_bounded_memory(tmp_path):
    """Peak anonymous memory of a 1M-pair build stays near that of a 100k build.

    Anonymous memory (RssAnon), sampled every 20 ms: the Arrow files that `save_to_disk` reads are
    memory-mapped, and their page cache shows up in plain RSS although the kernel can drop it at will.
    """

    def peak_anon_mb(n: int) -> float:
        corpus = tmp_path / f"corpus_{n}.jsonl"
        with corpus.open("w") as handle:
            for i in range(n):
                handle.write(json.dumps({"id": f"p{i}", "source": f"source sentence number {i} " * 4,
                                         "target": f"frase de destino número {i} " * 4}) + "\n")
        script = textwrap.dedent(f"""
            import threading, time
            peak = 0
            def watch():
                global peak
                while True:
                    for line in open("/proc/self/status"):
                        if line.startswith("RssAnon:"):
                            peak = max(peak, int(line.split()[1]))
                    time.sleep(0.02)
            threading.Thread(target=watch, daemon=True).start()
            from regurg_bench.builders.build import build_splits
            from regurg_bench.builders.config import BuildConfig, LadderConfig
            cfg = BuildConfig(corpus={str(corpus)!r}, src_lang="en", tgt_lang="es", size=None,
                              ladder=LadderConfig(step={n // 4}), fractions_of_real=[0.5], write_hf=True)
            m = build_splits(cfg, {str(tmp_path / f"out_{n}")!r}, {{}}, progress=False)
            assert m["conditions"]["real"]["pairs"] == {n}
            time.sleep(0.05)
            print(peak)
        """)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return int(proc.stdout.strip().splitlines()[-1]) / 1024

    small, large = peak_anon_mb(100_000), peak_anon_mb(1_000_000)
    corpus_mb = (tmp_path / "corpus_1000000.jsonl").stat().st_size / 2**20
    print(f"peak anonymous memory: 100k pairs {small:.0f} MB, 1M pairs {large:.0f} MB (corpus {corpus_mb:.0f} MB)")
    # 16 bytes of hash per pair (16 MB at 1M) plus the duplicate-id set of the corpus reader are
    # expected; holding the pairs would cost several times the corpus size.
    assert large - small < 0.5 * corpus_mb, (small, large, corpus_mb)


@pytest.mark.slow
def test_recursive_generations_replace_and_accumulate(tmp_path):
    """Teachers trained for real on each generation; every generation keeps the real split's sources."""
    cfg = BuildConfig(name="rec", seed=1, corpus="bible:en-es:dev", size=48, batch_size=48,
                      recursive={"generations": 2, "modes": ["replace", "accumulate"],
                                 "train": {"base_model": "scratch:test", "max_steps": 6, "batch_size": 16,
                                           "checkpoint_every": 0},
                                 "generate": {"max_new_tokens": 8, "batch_size": 48, "dtype": "float32"}})
    manifest = build_splits(cfg, tmp_path, {}, progress=False)
    real_ids = [r["id"] for r in _rows(tmp_path / "real.jsonl")]
    for mode in ("replace", "accumulate"):
        for k in (1, 2):
            info = manifest["conditions"][f"recursive_{mode}_gen{k}"]
            rows = _rows(tmp_path / info["file"])
            ids = [r["id"] for r in rows]
            assert set(ids) <= set(real_ids) and len(ids) + info["dropped_failed_generation"] == len(real_ids)
            assert {r["origin"] for r in rows} == {f"teacher_{mode}_{k}"}
            assert (tmp_path / info["teacher"] / "training_card.json").exists()
    card = json.loads((tmp_path / "recursive/accumulate/teacher_2/training_card.json").read_text())
    assert card["split"]["spec"].endswith("recursive_accumulate_pool1.jsonl")
    replace_card = json.loads((tmp_path / "recursive/replace/teacher_2/training_card.json").read_text())
    assert replace_card["split"]["spec"].endswith("recursive_replace_gen1.jsonl")
    pool1 = manifest["conditions"]["recursive_accumulate_pool1"]
    assert pool1["pairs"] == len(real_ids) + manifest["conditions"]["recursive_accumulate_gen1"]["pairs"]
