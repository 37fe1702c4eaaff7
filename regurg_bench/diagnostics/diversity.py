"""Lexical diversity that is fair across lengths: MTLD, MATTR, distinct-n and vocabulary growth.

The first paper's second mechanism is *lower lexical diversity* of generated data. Plain type-token
ratio (TTR) falls as a text gets longer, so comparing two corpora of different lengths by TTR says
more about their lengths than about their vocabularies. Here:

- **MTLD** (McCarthy & Jarvis 2010), bidirectional: the mean length of stretches of text whose running
  TTR stays above 0.72, averaged over a forward and a backward pass; nearly length-independent.
- **MATTR** (Covington & McFall 2010): the mean TTR of every window of ``window`` consecutive tokens
  (500 by default); length-independent once the text is longer than the window.
- **distinct-n**: unique / total n-grams (n-grams never cross a sentence boundary) counted over the
  *same number of tokens* for every condition.
- **vocabulary growth**: the number of types after the first 1k, 2k, 5k, ... tokens; points are
  identical token counts for every condition, so the curves can be read against each other.
- plain **TTR** of the whole text, labelled length-biased, for comparison with older reports.

Every statistic except ``ttr_full`` and ``tokens_total`` is computed on the first ``token_budget``
tokens of the condition (the runner sets the budget to the smallest condition's token count, so all
conditions are measured on equally many tokens of the same ids in the same order).

Tokens come from :func:`regurg_bench.diagnostics.base.words` (NFC, casefold, ``\\w+``).

Implemented here rather than taken from ``lexicalrichness`` (0.5.1, last release 2023): that package
imports matplotlib, pandas and scipy at import time, pulls in textblob, and computes MATTR by building
a set per window (O(n·w)); the definitions below are the same (``<=`` threshold, partial factor for
the remainder, mean of both directions) and the tests check them against hand-computed values.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from regurg_bench.corpora.base import Pair
from regurg_bench.diagnostics.base import (
    TOKENIZER_NAME,
    Diagnostic,
    StatInfo,
    Stats,
    as_pairs,
    register_diagnostic,
    words,
)

#: Token counts at which vocabulary growth is read (only those within the budget are reported).
GROWTH_POINTS: tuple[int, ...] = (1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000,
                                  500_000, 1_000_000, 2_000_000, 5_000_000)


def _mtld_pass(tokens: Iterable[str], n_tokens: int, threshold: float) -> float:
    factors = 0.0
    types: set[str] = set()
    count = 0
    for token in tokens:
        count += 1
        types.add(token)
        if len(types) / count <= threshold:
            factors += 1.0
            types = set()
            count = 0
    if count:  # the unfinished last stretch counts as the fraction of a factor it got through
        factors += (1.0 - len(types) / count) / (1.0 - threshold)
    # A text whose TTR never fell (all tokens distinct) has no factor at all: count it as one factor,
    # so its MTLD is its length (as lexicalrichness and koRpus do) rather than infinite.
    return n_tokens / factors if factors > 0 else float(n_tokens)


def mtld(tokens: Sequence[str], threshold: float = 0.72) -> float | None:
    """Bidirectional MTLD: mean of the forward and the backward pass (``None`` for no tokens)."""
    if not tokens:
        return None
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"MTLD threshold must lie in (0, 1), got {threshold}")
    forward = _mtld_pass(tokens, len(tokens), threshold)
    backward = _mtld_pass(reversed(tokens), len(tokens), threshold)
    return (forward + backward) / 2.0


def mattr(tokens: Sequence[str], window: int = 500) -> float | None:
    """Moving-average TTR over every window of ``window`` tokens, in O(n).

    A text shorter than the window has a single, partial window: its TTR is returned (Covington &
    McFall's convention), which is length-biased; the report records the token count beside it.
    """
    if window < 1:
        raise ValueError(f"MATTR window must be a positive integer, got {window}")
    n = len(tokens)
    if n == 0:
        return None
    if n <= window:
        return len(set(tokens)) / n
    counts: Counter[str] = Counter()
    distinct = 0
    total = 0
    for i, token in enumerate(tokens):
        if counts[token] == 0:
            distinct += 1
        counts[token] += 1
        if i >= window:
            old = tokens[i - window]
            counts[old] -= 1
            if counts[old] == 0:
                distinct -= 1
        if i >= window - 1:
            total += distinct
    return total / (window * (n - window + 1))


def distinct_n(sentences: Sequence[Sequence[str]], n: int) -> float | None:
    """Unique n-grams / all n-grams, n-grams taken within each sentence (``None`` if there are none)."""
    grams: set[tuple[str, ...]] = set()
    total = 0
    for toks in sentences:
        for i in range(len(toks) - n + 1):
            grams.add(tuple(toks[i:i + n]))
            total += 1
    return len(grams) / total if total else None


def vocabulary_growth(tokens: Sequence[str], points: Iterable[int]) -> dict[int, int]:
    """Number of types among the first ``k`` tokens, for each ``k`` in ``points`` with ``k <= len``."""
    wanted = sorted(p for p in set(points) if 0 < p <= len(tokens))
    out: dict[int, int] = {}
    seen: set[str] = set()
    j = 0
    for i, token in enumerate(tokens, start=1):
        seen.add(token)
        while j < len(wanted) and wanted[j] == i:
            out[wanted[j]] = len(seen)
            j += 1
        if j == len(wanted):
            break
    return out


def truncate_sentences(sentences: Sequence[Sequence[str]], budget: int) -> list[Sequence[str]]:
    """The first ``budget`` tokens, keeping sentence boundaries (the last sentence may be cut)."""
    out: list[Sequence[str]] = []
    left = budget
    for toks in sentences:
        if left <= 0:
            break
        out.append(toks[:left])
        left -= len(out[-1])
    return out


def growth_key(points: int) -> str:
    """Statistic key of a growth point: ``types_at_1k``, ``types_at_2.5k``, ``types_at_1M``."""
    if points >= 1_000_000 and points % 100_000 == 0:
        return f"types_at_{points / 1_000_000:g}M"
    if points >= 1_000 and points % 100 == 0:
        return f"types_at_{points / 1_000:g}k"
    return f"types_at_{points}"


def count_tokens(pairs: Sequence[Pair] | Sequence[str]) -> int:
    """Total target-side tokens (what :class:`LexicalDiversity` budgets)."""
    return sum(len(words(p.target)) for p in as_pairs(pairs))


@register_diagnostic
class LexicalDiversity(Diagnostic):
    """MTLD, MATTR, distinct-1/2 and vocabulary growth of the target side, on an equal token budget."""

    name = "diversity"
    family = "diversity"
    stats = {
        "tokens_total": StatInfo("tokens (whole condition)"),
        "budget_tokens": StatInfo("tokens measured (equal budget)"),
        "ttr_full": StatInfo("TTR of whole text (length-biased)", "higher"),
        "mtld": StatInfo("MTLD (bidirectional, 0.72)", "higher", key=True),
        "mattr": StatInfo("MATTR", "higher", key=True),
        "distinct_1": StatInfo("distinct-1 (equal budget)", "higher"),
        "distinct_2": StatInfo("distinct-2 (equal budget)", "higher", key=True),
        "types_at_budget": StatInfo("types at the budget", "higher", key=True),
    }

    def __init__(self, *, token_budget: int | None = None, mtld_threshold: float = 0.72,
                 mattr_window: int = 500, growth_points: Sequence[int] = GROWTH_POINTS) -> None:
        if token_budget is not None and token_budget < 1:
            raise ValueError(f"token_budget must be positive, got {token_budget}")
        self.token_budget = token_budget
        self.mtld_threshold = mtld_threshold
        self.mattr_window = mattr_window
        self.growth_points = tuple(sorted(set(growth_points)))

    def settings(self) -> dict[str, object]:
        return {"tok": TOKENIZER_NAME, "budget": self.token_budget or "all",
                "mtld": self.mtld_threshold, "mattr_w": self.mattr_window}

    def compute(self, pairs: Sequence[Pair] | Sequence[str], reference: Sequence[Pair] | None = None) -> Stats:
        sentences = [words(p.target) for p in as_pairs(pairs)]
        total = sum(map(len, sentences))
        if total == 0:
            return {**self.empty(), "tokens_total": 0.0}
        budget = min(self.token_budget or total, total)
        kept = truncate_sentences(sentences, budget)
        stream = [t for toks in kept for t in toks]
        all_types = len({t for toks in sentences for t in toks})
        out: Stats = {
            "tokens_total": float(total),
            "budget_tokens": float(budget),
            "ttr_full": all_types / total,
            "mtld": mtld(stream, self.mtld_threshold),
            "mattr": mattr(stream, self.mattr_window),
            "distinct_1": distinct_n(kept, 1),
            "distinct_2": distinct_n(kept, 2),
            "types_at_budget": float(len(set(stream))),
        }
        for points, types in vocabulary_growth(stream, self.growth_points).items():
            out[growth_key(points)] = float(types)
        return out
