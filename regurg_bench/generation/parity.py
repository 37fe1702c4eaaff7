"""Parity of two generators on the same sentences: how often their greedy outputs are identical, and
how far apart their corpus BLEU / chrF against the human references are.

One normalisation, and only one: a trailing U+FFFD is dropped before comparing. When ``max_new_tokens``
cuts a multi-byte character, transformers' ``decode`` renders its partial bytes as U+FFFD while vLLM's
incremental detokenizer holds them back; the decoded tokens are the same. ``identical_raw`` counts
byte-identical outputs without it.

Used by ``tests/test_vllm_parity.py`` (vLLM vs transformers on a small slice) and by
``benchmarks/vllm_parity.py`` (the full comparison). sacrebleu's defaults, as the ``regurg_mt`` tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Parity:
    n: int
    identical: int
    identical_raw: int
    bleu_a: float
    bleu_b: float
    chrf_a: float
    chrf_b: float
    #: the first few sentences whose outputs differ: (index, output a, output b)
    differing: tuple[tuple[int, str, str], ...] = ()

    @property
    def identical_rate(self) -> float:
        return self.identical / self.n if self.n else 1.0

    @property
    def bleu_delta(self) -> float:
        return abs(self.bleu_a - self.bleu_b)

    @property
    def chrf_delta(self) -> float:
        return abs(self.chrf_a - self.chrf_b)

    def as_dict(self) -> dict:
        return asdict(self) | {"identical_rate": self.identical_rate, "bleu_delta": self.bleu_delta,
                               "chrf_delta": self.chrf_delta}


def compare_outputs(a: Sequence[str], b: Sequence[str], references: Sequence[str], *, keep: int = 5) -> Parity:
    """Compare two systems' outputs ``a`` and ``b`` (aligned with ``references``)."""
    import sacrebleu

    if not (len(a) == len(b) == len(references)):
        raise ValueError(f"outputs and references differ in length: {len(a)}, {len(b)}, {len(references)}")
    a, b = list(a), list(b)
    raw = sum(x == y for x, y in zip(a, b, strict=True))
    a, b = [_strip_partial(x) for x in a], [_strip_partial(y) for y in b]
    same = [x == y for x, y in zip(a, b, strict=True)]
    differing = tuple((i, x, y) for i, (x, y, s) in enumerate(zip(a, b, same, strict=True)) if not s)[:keep]
    refs = [list(references)]
    return Parity(n=len(a), identical=sum(same), identical_raw=raw,
                  bleu_a=sacrebleu.corpus_bleu(list(a), refs).score, bleu_b=sacrebleu.corpus_bleu(list(b), refs).score,
                  chrf_a=sacrebleu.corpus_chrf(list(a), refs).score, chrf_b=sacrebleu.corpus_chrf(list(b), refs).score,
                  differing=differing)


def _strip_partial(text: str) -> str:
    """``text`` without the U+FFFD of a multi-byte character cut at the end (see the module docstring)."""
    return text.rstrip("\ufffd").rstrip()
