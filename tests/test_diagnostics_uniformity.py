"""Format uniformity: hand-computed openings/templates/lengths/repetition, and a degenerate generator."""

from __future__ import annotations

import dataclasses

import pytest

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.diagnostics import diagnose
from regurg_bench.diagnostics.uniformity import (
    LengthSpread,
    Openings,
    Repetition,
    Templates,
    function_words,
    skeleton,
)


def test_openings_hand_computed() -> None:
    texts = ["The cat sat", "the dog ran", "A cat sat", "the cat ran"]
    stats = Openings(top_k=1).compute(texts)
    assert stats["opening1_top_share"] == pytest.approx(3 / 4)  # "the" x3
    assert stats["opening2_top_share"] == pytest.approx(2 / 4)  # "the cat" x2
    assert stats["opening3_top_share"] == pytest.approx(1 / 4)  # all distinct: the top one covers 1


def test_skeleton_and_templates() -> None:
    keep = frozenset({"the", "of"})
    assert skeleton("The son of David, 12 men went", keep) == "the _ of _ # _"
    assert function_words(["b a a", "c a b"], k=2) == frozenset({"a", "b"})
    texts = ["the son of david", "the king of judah", "the end", "a b c"]
    stats = Templates(n_function_words=2).compute(texts)  # function words: the, of
    # skeletons: "the _ of _" x2, "the _", "_" -> 2 of 4 outputs share one
    assert stats["template_shared_rate"] == pytest.approx(0.5)
    assert Templates(n_function_words=2, top_k=1).compute(texts)["template_top_share"] == pytest.approx(0.5)


def test_length_spread_hand_computed() -> None:
    stats = LengthSpread().compute(["a", "a b c"])
    assert stats["length_words_mean"] == 2 and stats["length_words_std"] == 1
    assert stats["length_words_cv"] == pytest.approx(0.5)
    assert stats["length_ratio_cv"] is None  # bare texts have no source


def test_repetition_hand_computed() -> None:
    texts = ["a b c d a b c d", "x y z w", "x y z w", "p q"]
    stats = Repetition(n=4).compute(texts)
    assert stats["within_repeat_rate"] == pytest.approx(1 / 4)
    # output 1: 5 4-grams, 4 distinct -> 1/5 repeated; the others 0
    assert stats["within_repeat_share"] == pytest.approx((1 / 5) / 4)
    # 4-gram occurrences: 5 + 1 + 1 = 7; "x y z w" is in two outputs -> 2 shared
    assert stats["cross_repeat_share"] == pytest.approx(2 / 7)
    assert stats["duplicate_output_rate"] == pytest.approx(2 / 4)


def test_degenerate_generator_is_less_diverse_and_more_uniform_than_humans() -> None:
    real = load_bible_pairs("en-es", "train")[::40][:600]
    # One template and a repetition loop built from the first words of the human target.
    def degenerate(text: str) -> str:
        head = " ".join(text.split()[:3])
        return f"Y dijo el Señor: {head} {head} {head}."

    generated = [dataclasses.replace(p, target=degenerate(p.target)) for p in real]
    report = diagnose({"real": real, "regurg_loop": generated},
                      diagnostics=["diversity", "openings", "templates", "length_spread", "repetition"])
    r, g = report.stats["real"], report.stats["regurg_loop"]
    assert r["budget_tokens"] == g["budget_tokens"]  # measured on equal token counts
    for key in ("mtld", "mattr", "distinct_1", "distinct_2", "types_at_budget"):
        assert g[key] < r[key], key
    for key in ("opening1_top_share", "opening2_top_share", "template_shared_rate", "within_repeat_rate",
                "cross_repeat_share"):
        assert g[key] > r[key], key
    assert g["length_words_cv"] < r["length_words_cv"]
