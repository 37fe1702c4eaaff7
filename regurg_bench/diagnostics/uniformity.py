"""Format uniformity (the second paper, Chen et al. 2024): do generated targets all look alike?

Synthetic data tends to open the same way, follow one template, have similar lengths and repeat
phrases. Each statistic is computed for the human targets too; the human value is the baseline to read
a generator's value against (Bible verses are formulaic themselves: a quarter of Spanish verses open
with "Y").

- :class:`Openings`: share of outputs whose first 1/2/3 words are one of the 10 most frequent openings.
- :class:`Templates`: the *skeleton* of an output keeps its function words and masks the rest
  (content words -> ``_``, a run of them collapses to one ``_``; numbers -> ``#``). Function words are
  the 50 most frequent word types of the human targets (of the output itself when there is no human
  reference), so every condition is masked with the same list. Reported: share of outputs whose
  skeleton another output shares, and the share covered by the 10 most frequent skeletons.
- :class:`LengthSpread`: mean, standard deviation and coefficient of variation of output length in
  words, and the coefficient of variation of the target/source word ratio (low = uniform lengths
  whatever the source).
- :class:`Repetition`: repeated 4-grams within an output (degenerate loops), 4-grams shared across
  outputs, and outputs that are exact duplicates of another output.

All of these count outputs or n-grams of the same ids; compare conditions with the same number of
outputs (the runner guarantees it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from regurg_bench.corpora.base import Pair
from regurg_bench.diagnostics.base import (
    TOKENIZER_NAME,
    Diagnostic,
    StatInfo,
    Stats,
    as_pairs,
    mean,
    normalize_text,
    register_diagnostic,
    share,
    words,
)


def _top_share(counts: Counter, top_k: int, total: int) -> float | None:
    return sum(c for _, c in counts.most_common(top_k)) / total if total else None


@register_diagnostic
class Openings(Diagnostic):
    """Share of outputs that open with one of the ``top_k`` most frequent 1-, 2- and 3-word openings."""

    name = "openings"
    family = "uniformity"
    stats = {
        "opening1_top_share": StatInfo("first word in top-10 openings", "lower", percent=True),
        "opening2_top_share": StatInfo("first 2 words in top-10 openings", "lower", key=True, percent=True),
        "opening3_top_share": StatInfo("first 3 words in top-10 openings", "lower", percent=True),
    }

    def __init__(self, *, top_k: int = 10, lengths: Sequence[int] = (1, 2, 3)) -> None:
        self.top_k, self.lengths = top_k, tuple(lengths)

    def settings(self) -> dict[str, Any]:
        return {"top": self.top_k, "n": self.lengths, "tok": TOKENIZER_NAME}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        toks = [words(p.target) for p in as_pairs(pairs)]
        out: Stats = {}
        for n in self.lengths:
            counts = Counter(tuple(t[:n]) for t in toks)
            out[f"opening{n}_top_share"] = _top_share(counts, self.top_k, len(toks))
        return out


def function_words(texts: Sequence[str], k: int = 50) -> frozenset[str]:
    """The ``k`` most frequent word types (ties broken alphabetically, so the list is deterministic)."""
    counts = Counter(t for text in texts for t in words(text))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return frozenset(w for w, _ in ranked[:k])


def skeleton(text: str, keep: frozenset[str]) -> str:
    """Function words kept, numbers -> ``#``, runs of other words -> one ``_``."""
    out: list[str] = []
    for tok in words(text):
        if tok in keep:
            out.append(tok)
        elif tok.isdigit():
            out.append("#")
        elif not out or out[-1] != "_":
            out.append("_")
    return " ".join(out)


@register_diagnostic
class Templates(Diagnostic):
    """How often outputs share a skeleton (function words kept, content masked)."""

    name = "templates"
    family = "uniformity"
    stats = {
        "template_shared_rate": StatInfo("skeleton shared with another output", "lower", key=True, percent=True),
        "template_top_share": StatInfo("outputs in top-10 skeletons", "lower", percent=True),
    }

    def __init__(self, *, n_function_words: int = 50, top_k: int = 10) -> None:
        self.n_function_words, self.top_k = n_function_words, top_k

    def settings(self) -> dict[str, Any]:
        return {"fw": f"top{self.n_function_words}-of-human", "top": self.top_k, "tok": TOKENIZER_NAME}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if not pairs:
            return self.empty()
        basis = reference if reference is not None else pairs
        keep = function_words([p.target for p in basis], self.n_function_words)
        counts = Counter(skeleton(p.target, keep) for p in pairs)
        return {
            "template_shared_rate": sum(c for c in counts.values() if c > 1) / len(pairs),
            "template_top_share": _top_share(counts, self.top_k, len(pairs)),
        }


def _cv(values: Sequence[float]) -> tuple[float, float, float | None]:
    m = sum(values) / len(values)
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / len(values))
    return m, sd, (sd / m if m else None)


@register_diagnostic
class LengthSpread(Diagnostic):
    """Output length in words (mean, std, coefficient of variation) and the CV of target/source ratio."""

    name = "length_spread"
    family = "uniformity"
    stats = {
        "length_words_mean": StatInfo("output words (mean)"),
        "length_words_std": StatInfo("output words (std)"),
        "length_words_cv": StatInfo("output length CV"),
        "length_ratio_cv": StatInfo("target/source word-ratio CV", key=True),
    }

    def settings(self) -> dict[str, Any]:
        return {"tok": TOKENIZER_NAME, "std": "population"}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if not pairs:
            return self.empty()
        lengths = [float(len(words(p.target))) for p in pairs]
        m, sd, cv = _cv(lengths)
        ratios = [len(words(p.target)) / len(words(p.source)) for p in pairs if words(p.source)]
        return {"length_words_mean": m, "length_words_std": sd, "length_words_cv": cv,
                "length_ratio_cv": _cv(ratios)[2] if ratios else None}


def _ngrams(toks: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(toks[i:i + n]) for i in range(len(toks) - n + 1)]


@register_diagnostic
class Repetition(Diagnostic):
    """Repeated n-grams within outputs (loops), n-grams recycled across outputs, duplicate outputs.

    - ``within_repeat_rate``: share of outputs in which some n-gram occurs twice or more;
    - ``within_repeat_share``: mean over outputs of the share of n-gram occurrences that repeat an
      earlier one in the same output (1 - distinct/total), outputs shorter than n count as 0;
    - ``cross_repeat_share``: share of all n-gram occurrences whose n-gram also occurs in a *different*
      output;
    - ``duplicate_output_rate``: share of outputs identical (casefolded) to another output.
    """

    name = "repetition"
    family = "uniformity"
    stats = {
        "within_repeat_rate": StatInfo("outputs repeating a 4-gram", "lower", key=True, percent=True),
        "within_repeat_share": StatInfo("repeated 4-grams within output (mean)", "lower", percent=True),
        "cross_repeat_share": StatInfo("4-grams shared across outputs", "lower", key=True, percent=True),
        "duplicate_output_rate": StatInfo("duplicate outputs", "lower", key=True, percent=True),
    }

    def __init__(self, *, n: int = 4) -> None:
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self.n = n

    def settings(self) -> dict[str, Any]:
        return {"n": self.n, "tok": TOKENIZER_NAME}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        pairs = as_pairs(pairs)
        if not pairs:
            return self.empty()
        grams = [_ngrams(words(p.target), self.n) for p in pairs]
        within_any, within_share = [], []
        outputs_with: Counter[tuple[str, ...]] = Counter()  # n-gram -> number of outputs containing it
        for g in grams:
            distinct = set(g)
            within_any.append(len(distinct) < len(g))
            within_share.append(1 - len(distinct) / len(g) if g else 0.0)
            outputs_with.update(distinct)
        total = sum(map(len, grams))
        shared = sum(1 for g in grams for x in g if outputs_with[x] > 1)
        texts = Counter(normalize_text(p.target) for p in pairs)
        return {
            "within_repeat_rate": share(within_any),
            "within_repeat_share": mean(within_share),
            "cross_repeat_share": shared / total if total else None,
            "duplicate_output_rate": sum(c for c in texts.values() if c > 1) / len(pairs),
        }
