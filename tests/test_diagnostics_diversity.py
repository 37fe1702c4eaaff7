"""Lexical diversity: hand-computed MTLD/MATTR/distinct-n/growth, and length fairness on real verses."""

from __future__ import annotations

import random

import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.diagnostics.base import words
from regurg_bench.diagnostics.diversity import (
    LexicalDiversity,
    distinct_n,
    growth_key,
    mattr,
    mtld,
    truncate_sentences,
    vocabulary_growth,
)


def test_words_tokeniser_is_casefolded_nfc_and_drops_punctuation() -> None:
    assert words("Y dijo DIOS: Sea la luz; y fué la luz.") == ["y", "dijo", "dios", "sea", "la", "luz", "y", "fué", "la", "luz"]
    assert words("e\u0301te") == words("\u00e9te") == ["éte"]  # combining accent -> one NFC letter
    assert words("l'homme, 12 fils") == ["l", "homme", "12", "fils"]


def test_mtld_hand_computed() -> None:
    # a b | a -> TTR 2/3 <= 0.72 closes a factor; twice; 6 tokens / 2 factors, both directions.
    assert mtld("a b a b a b".split()) == pytest.approx(3.0)
    # TTR never falls: 3/4 = 0.75 at the end -> partial factor (1 - 0.75) / (1 - 0.72).
    assert mtld("a b c a".split()) == pytest.approx(4 / (0.25 / 0.28))
    # Asymmetric: forward a a(1/2: factor) b c d(partial 0) -> 5/1; backward d c b a a (4/5) -> 5/(0.2/0.28).
    assert mtld("a a b c d".split()) == pytest.approx((5.0 + 5 / (0.2 / 0.28)) / 2)
    # All distinct: no factor at all -> the text length (convention shared with lexicalrichness).
    assert mtld("a b c d".split()) == pytest.approx(4.0)
    assert mtld([]) is None
    with pytest.raises(ValueError):
        mtld(["a"], threshold=1.0)


def test_mattr_hand_computed_and_matches_brute_force() -> None:
    assert mattr("a b a c".split(), window=2) == pytest.approx(1.0)
    assert mattr("a b a c".split(), window=3) == pytest.approx((2 / 3 + 3 / 3) / 2)
    assert mattr("a b a c".split(), window=10) == pytest.approx(3 / 4)  # shorter than the window: its TTR
    assert mattr([], window=3) is None
    rng = random.Random(0)
    toks = [rng.choice("abcdefghij") for _ in range(300)]
    w = 25
    brute = sum(len(set(toks[i:i + w])) / w for i in range(len(toks) - w + 1)) / (len(toks) - w + 1)
    assert mattr(toks, window=w) == pytest.approx(brute)


def test_distinct_n_counts_within_sentences() -> None:
    sents = [["a", "b", "a"], ["b", "a"]]
    assert distinct_n(sents, 1) == pytest.approx(2 / 5)
    assert distinct_n(sents, 2) == pytest.approx(2 / 3)  # ab, ba, ba: no "a b" across the boundary
    assert distinct_n([["a"]], 2) is None


def test_vocabulary_growth_and_budget() -> None:
    assert vocabulary_growth("a b a c d".split(), [1, 3, 5, 10]) == {1: 1, 3: 2, 5: 4}
    assert truncate_sentences([["a", "b"], ["c", "d", "e"], ["f"]], 3) == [["a", "b"], ["c"]]
    assert [growth_key(k) for k in (1000, 2500, 50_000, 1_000_000, 999)] == [
        "types_at_1k", "types_at_2.5k", "types_at_50k", "types_at_1M", "types_at_999"]


def test_diagnostic_uses_the_equal_token_budget() -> None:
    texts = ["a b c d e", "f g h i j", "k l m n o"]
    full = LexicalDiversity(mattr_window=3).compute(texts)
    assert full["tokens_total"] == 15 and full["budget_tokens"] == 15 and full["types_at_budget"] == 15
    cut = LexicalDiversity(token_budget=7, mattr_window=3).compute(texts)
    assert cut["budget_tokens"] == 7 and cut["types_at_budget"] == 7 and cut["tokens_total"] == 15
    assert cut["ttr_full"] == pytest.approx(1.0)
    assert "budget:7" in LexicalDiversity(token_budget=7).signature()


def test_mtld_and_mattr_are_length_fair_where_ttr_is_not() -> None:
    # Verses in a seeded random order: the 3x longer text continues the same distribution.
    pairs = list(load_bible_pairs("en-es", "train"))
    random.Random(0).shuffle(pairs)
    toks = [t for p in pairs[:3000] for t in words(p.target)]
    short, long = toks[:5_000], toks[:15_000]
    ttr_short, ttr_long = len(set(short)) / len(short), len(set(long)) / len(long)
    assert ttr_long < 0.75 * ttr_short  # plain TTR drops with length...
    assert mtld(long) == pytest.approx(mtld(short), rel=0.15)  # ...MTLD and MATTR stay put
    assert mattr(long, 500) == pytest.approx(mattr(short, 500), rel=0.05)
