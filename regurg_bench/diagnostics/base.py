"""The diagnostic interface: one small class per diagnostic, a registry, and the shared tokeniser.

A diagnostic is configured once (its settings are constructor arguments, recorded in its
:meth:`~Diagnostic.signature`), then :meth:`~Diagnostic.compute` turns one condition's pairs into named
statistics. Conditions are compared *by id*: the runner (:func:`regurg_bench.diagnostics.diagnose`)
hands every generated condition the human pairs of the same ids, in the same order, as ``reference``.

A statistic that cannot be computed is ``None`` ("not available"), never a made-up number; a
diagnostic that cannot run at all (a missing optional package, no encoder configured) raises
:class:`DiagnosticUnavailable` and the runner records the reason.
"""

from __future__ import annotations

import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from regurg_bench import __version__
from regurg_bench.corpora.base import Pair
from regurg_bench.registry import Registry

Stats = dict[str, float | None]
Family = Literal["errors", "diversity", "uniformity"]


class DiagnosticUnavailable(RuntimeError):
    """This diagnostic cannot run here; the message says why and what would enable it."""


@dataclass(frozen=True, slots=True)
class StatInfo:
    """What one statistic means: a label for tables/plots and which direction is "more human-like".

    ``better`` is the direction that usually indicates *better data* (``None`` when neither is: e.g. a
    length ratio, where closeness to the human value is what matters). ``key`` marks statistics
    plotted by default.
    """

    label: str
    better: Literal["higher", "lower"] | None = None
    key: bool = False
    percent: bool = False  # a share in [0, 1], printed as a percentage


# -- tokenisation ----------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
TOKENIZER_NAME = "nfc-casefold-w+"


def words(text: str) -> list[str]:
    """Language-agnostic lowercase word tokens: NFC-normalise, casefold, keep maximal ``\\w+`` runs.

    Punctuation is dropped (diversity of commas is not lexical diversity); letters, digits and marks of
    any script count, so Spanish and French accents stay inside words. Apostrophes split
    (``l'homme`` -> ``l``, ``homme``). Not suited to scripts written without spaces (Chinese,
    Japanese, Thai), where a whole clause would be one token.
    """
    return _WORD.findall(unicodedata.normalize("NFC", text).casefold())


def normalize_text(text: str) -> str:
    """NFC, casefolded, whitespace collapsed: for exact-match comparisons (copies, duplicates)."""
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


# -- the base class --------------------------------------------------------------------------------


class Diagnostic(ABC):
    """One diagnostic: ``name`` (registry key), ``family``, its statistics and a signature.

    Subclasses set :attr:`name`, :attr:`family` and :attr:`stats`, store their settings as attributes
    listed by :meth:`settings`, and implement :meth:`compute`.
    """

    name: ClassVar[str]
    family: ClassVar[Family]
    #: Statistic key -> description. ``compute`` returns exactly these keys (values may be ``None``),
    #: except diagnostics with data-dependent keys (vocabulary growth), which list their fixed ones.
    stats: ClassVar[dict[str, StatInfo]]
    #: True when the statistics compare against the human target of the same id (``reference``).
    needs_reference: ClassVar[bool] = False

    def settings(self) -> dict[str, Any]:
        """Every setting that changes a number (part of the signature)."""
        return {}

    def signature(self) -> str:
        """sacrebleu-style ``name|key:value|...|version:x``: print it with every number."""
        fields = {**self.settings(), "version": __version__}
        return self.name + "|" + "|".join(f"{k}:{_fmt(v)}" for k, v in fields.items())

    @abstractmethod
    def compute(self, pairs: Sequence[Pair] | Sequence[str],
                reference: Sequence[Pair] | None = None) -> Stats:
        """Statistics of one condition.

        ``pairs`` are the condition's pairs (or bare target texts, for target-only diagnostics).
        ``reference`` holds the human pairs of the same ids in the same order, or ``None`` when
        ``pairs`` *are* the human data; statistics that need it are then ``None``.
        """

    def empty(self) -> Stats:
        """Every statistic "not available"."""
        return dict.fromkeys(self.stats)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.signature()})"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(map(str, value))
    return str(value)


def as_pairs(items: Sequence[Pair] | Sequence[str], *, tgt_lang: str = "und") -> list[Pair]:
    """Pairs unchanged; bare strings become target-only pairs (empty source) so target-side
    diagnostics accept plain text lists."""
    out: list[Pair] = []
    for i, item in enumerate(items):
        if isinstance(item, Pair):
            out.append(item)
        elif isinstance(item, str):
            out.append(Pair(id=str(i), source="", target=item, src_lang="und", tgt_lang=tgt_lang))
        else:
            raise TypeError(f"expected Pair or str, got {type(item).__name__} at position {i}")
    return out


def check_aligned(pairs: Sequence[Pair], reference: Sequence[Pair] | None) -> None:
    """Raise unless ``reference`` has the same ids in the same order as ``pairs``."""
    if reference is None:
        return
    if len(reference) != len(pairs):
        raise ValueError(f"reference has {len(reference)} pairs, the condition {len(pairs)}")
    for i, (p, r) in enumerate(zip(pairs, reference, strict=True)):
        if p.id != r.id:
            raise ValueError(f"pair {i}: id {p.id!r} is not aligned with reference id {r.id!r}")


# -- registry --------------------------------------------------------------------------------------

#: name -> :class:`Diagnostic` class, each registered under its ``name`` attribute.
DIAGNOSTICS: Registry[Diagnostic] = Registry("diagnostic", attribute="name", modules=("regurg_bench.diagnostics",))


def register_diagnostic(cls: type[Diagnostic]) -> type[Diagnostic]:
    """Class decorator: add a diagnostic to :data:`DIAGNOSTICS` under its ``name``."""
    return DIAGNOSTICS.register()(cls)


def stat_infos() -> dict[str, tuple[str, StatInfo]]:
    """Statistic key -> (diagnostic name, info) over every registered diagnostic."""
    out: dict[str, tuple[str, StatInfo]] = {}
    for name, cls in DIAGNOSTICS.items():
        for key, info in cls.stats.items():
            out[key] = (name, info)
    return out


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default) of already sorted values."""
    if not sorted_values:
        raise ValueError("quantile of no values")
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def evenly_spaced(n: int, m: int | None) -> list[int]:
    """Indices of ``m`` evenly spaced items out of ``n`` (all of them when ``m`` is None or >= n).

    Deterministic, and spread over the whole split (splits are in corpus order, e.g. book by book).
    """
    if not m or n <= m:
        return list(range(n))
    return sorted({round(i * (n - 1) / (m - 1)) for i in range(m)}) if m > 1 else [0]


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def median(values: Sequence[float]) -> float | None:
    return quantile(sorted(values), 0.5) if values else None


def share(flags: Sequence[bool] | Sequence[int], predicate: Callable[[Any], bool] = bool) -> float | None:
    """Share of items for which ``predicate`` holds (``None`` for no items)."""
    return sum(1 for f in flags if predicate(f)) / len(flags) if flags else None
