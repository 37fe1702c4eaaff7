"""Embedded base models built from a recipe: deterministic, cached, fingerprinted, a generator of its own
(self-regurgitation), and the Bible subsets the default keeps disjoint."""

from __future__ import annotations

import dataclasses
import json

import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.models import base_models
from regurg_bench.models.base_models import BaseRecipe
from regurg_bench.training.trainer import base_model_path, build_base_model

#: a recipe small enough for a test: the 0.2M-parameter preset, 3 steps of 8 pairs
TINY = BaseRecipe(corpus="bible:en-es:dev", preset="test", max_steps=3, batch_size=8, lr=3e-3,
                  description="test-only base")


def test_bible_subsets_split_train_by_testament():
    train = load_bible_pairs("en-es", "train")
    ot, nt = load_bible_pairs("en-es", "train-ot"), load_bible_pairs("en-es", "train-nt")
    assert {p.id for p in ot}.isdisjoint({p.id for p in nt})
    assert {p.id for p in ot} | {p.id for p in nt} == {p.id for p in train}
    assert max(int(p.meta["book_number"]) for p in ot) <= 39 < min(int(p.meta["book_number"]) for p in nt)
    assert not {p.meta["book"] for p in nt} & {"Acts", "James"}  # test and dev books stay out
    with pytest.raises(ValueError, match="train-nt"):
        load_bible_pairs("en-es", "train-xx")


def test_same_recipe_same_fingerprint_other_seed_other_model(tmp_path):
    a = build_base_model(TINY, tmp_path / "a")
    b = build_base_model(TINY, tmp_path / "b")
    assert a["fingerprint"] == b["fingerprint"] and a["recipe_digest"] == b["recipe_digest"]
    assert set(a["fingerprint"]) == {"model.safetensors", "tokenizer.json"}
    c = build_base_model(dataclasses.replace(TINY, seed=1), tmp_path / "c")
    assert c["recipe_digest"] != a["recipe_digest"]
    assert c["fingerprint"]["model.safetensors"] != a["fingerprint"]["model.safetensors"]
    card = json.loads((tmp_path / "a" / base_models.CARD_NAME).read_text())
    assert card["recipe"]["corpus"] == "bible:en-es:dev" and card["tokens"] > 0


@pytest.fixture
def registered_tiny(monkeypatch, tmp_path):
    monkeypatch.setenv("REGURG_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(base_models.BASE_MODELS, "tiny-test-base", TINY)
    return "tiny-test-base"


def test_built_once_at_first_use_then_cached(registered_tiny):
    assert not base_models.is_built(registered_tiny)
    path = base_model_path(registered_tiny, progress=False)
    assert (path / "config.json").is_file() and base_models.is_built(registered_tiny)
    assert path.name == f"{registered_tiny}-{TINY.digest()[:12]}"
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert base_model_path(registered_tiny) == path  # no rebuild
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp
    assert not list(path.parent.glob(".*.part"))  # the work folder became the target


def test_trainer_fine_tunes_a_base_model_by_name(registered_tiny, tmp_path):
    from regurg_bench.training import TrainConfig, train

    out = train(TrainConfig(split="bible:en-es:dev", out=str(tmp_path / "student"), base_model=registered_tiny,
                            max_steps=2, batch_size=4, checkpoint_every=0, progress=False, max_pairs=16))
    card = json.loads((out / "training_card.json").read_text())
    assert card["base_model"]["kind"] == "hf" and card["method"] == "full"
    assert card["base_model"]["path"] == str(base_models.base_model_dir(registered_tiny))


def test_self_regurgitation_generator_is_the_base_model(registered_tiny):
    """The default's `self` generator: a teacher whose checkpoint is the base model the students tune."""
    from regurg_bench.generation.base import build_generator
    from regurg_bench.generation.transformers_backend import checkpoint_fingerprint

    gen = build_generator("teacher", checkpoint=registered_tiny, max_new_tokens=8, batch_size=4)
    sig = gen.signature().to_dict()
    path = base_models.base_model_dir(registered_tiny)
    assert sig["info"]["checkpoint"] == str(path.resolve())
    assert checkpoint_fingerprint(path) in json.dumps(sig)
    sources = [p.source for p in load_bible_pairs("en-es", "test")[:4]]
    results = gen.generate(sources, "en", "es")
    assert len(results) == 4 and all((r.target is not None) == r.ok for r in results)
    # same checkpoint and sources: the same outputs (the cache relies on it)
    again = build_generator("teacher", checkpoint=registered_tiny, max_new_tokens=8, batch_size=2)
    assert [r.target for r in again.generate(sources, "en", "es")] == [r.target for r in results]


def test_unknown_base_model_lists_known():
    with pytest.raises(ValueError, match="bible-base-en-es"):
        base_models.get_base_recipe("nope")
