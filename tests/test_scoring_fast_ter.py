"""The row-wise TER edit distance gives sacrebleu's own TER statistics, sentence by sentence."""

from __future__ import annotations

import random

import numpy as np
import pytest
from sacrebleu.metrics import TER, lib_ter

from regurg_bench.corpora.bible import load_bible_pairs
from regurg_bench.scoring.fast_ter import RowwiseBeamEditDistance, fast_ter, supported

pytestmark = pytest.mark.skipif(not supported(), reason="sacrebleu release not checked by fast_ter")


def _hypotheses(refs: list[str], seed: int = 0) -> list[str]:
    """Outputs of the kinds students give: copies, near misses, shuffles, loops to the token cap, empty
    lines, far too short or too long (the beam widens), other case and punctuation, other verses."""
    rng = random.Random(seed)
    out = []
    for k, ref in enumerate(refs):
        words = ref.split()
        kind = k % 10
        if kind == 0:
            hyp = ref
        elif kind == 1:
            hyp = " ".join(w for w in words if rng.random() > 0.3)
        elif kind == 2:
            hyp = " ".join(rng.sample(words, len(words)))
        elif kind == 3:  # a looping output that runs to the cap
            phrase = words[:rng.randint(1, 4)] or ["de"]
            hyp = " ".join((phrase * 200)[:256])
        elif kind == 4:
            hyp = ""
        elif kind == 5:
            hyp = words[0] if words else "y"
        elif kind == 6:  # chunks moved around: what TER's shifts are for
            cut = len(words) // 3
            hyp = " ".join(words[cut:2 * cut] + words[:cut] + words[2 * cut:])
        elif kind == 7:
            hyp = ref.upper().replace(",", " ,").replace(".", "")
        elif kind == 8:
            hyp = refs[(k * 7) % len(refs)]
        else:  # a long repetition of the reference with noise
            hyp = " ".join((words + [rng.choice(words or ["x"]) for _ in range(5)]) * 4)
        out.append(hyp)
    return out


def _stats(hyps: list[str], refs: list[str], fast: bool) -> np.ndarray:
    metric = TER()
    if fast:
        with fast_ter():
            return np.asarray(metric._extract_corpus_statistics(hyps, [refs]))
    return np.asarray(metric._extract_corpus_statistics(hyps, [refs]))


def test_every_sentence_statistic_equals_sacrebleus():
    refs = [p.target for p in load_bible_pairs("en-es", "test")[:300]]
    refs += ["", "uno", "a b c"]  # an empty reference, a one-word one, a short one
    hyps = _hypotheses(refs)
    slow, fast = _stats(hyps, refs, fast=False), _stats(hyps, refs, fast=True)
    assert slow.shape == (len(refs), 2)
    differ = [i for i in range(len(refs)) if not np.array_equal(slow[i], fast[i])]
    assert not differ, [(hyps[i][:60], refs[i][:60], slow[i], fast[i]) for i in differ[:5]]
    assert len(set(map(tuple, slow))) > 50  # the sentences really differ: a constant would not test much


def test_same_edit_distance_rows_and_trace_with_and_without_the_cache(monkeypatch):
    rng = random.Random(1)
    vocab = [f"w{i}" for i in range(12)]
    for size in (0, 3, 10_000):  # a tiny prefix cache that fills up, and sacrebleu's own limit
        monkeypatch.setattr(lib_ter, "_MAX_CACHE_SIZE", size)
        for _ in range(60):
            ref = [rng.choice(vocab) for _ in range(rng.randint(1, 40))]
            theirs, ours = lib_ter.BeamEditDistance(ref), RowwiseBeamEditDistance(ref)
            base = [rng.choice(vocab) for _ in range(rng.randint(0, 90))]
            for _ in range(8):  # hypotheses sharing prefixes, of other lengths: cached rows of another beam
                hyp = base[:rng.randint(0, len(base))] + [rng.choice(vocab) for _ in range(rng.randint(0, 30))]
                assert _outcome(ours, hyp) == _outcome(theirs, hyp), (ref, hyp)
            assert ours._cache_size == theirs._cache_size


def _outcome(distance, hyp: list[str]) -> tuple:
    """(edit distance, trace), or the error: rows cached under another length's beam can leave the path
    through an unreached cell, and sacrebleu then raises (TER itself never asks: its shifts keep the
    length); the row-wise class must raise alike."""
    try:
        return distance(hyp)
    except Exception as err:  # the exception is the outcome compared
        return ("raised", str(err))


def test_the_swap_is_undone_after_the_block():
    original = lib_ter.BeamEditDistance
    with pytest.raises(RuntimeError), fast_ter():
        assert lib_ter.BeamEditDistance is RowwiseBeamEditDistance
        raise RuntimeError("inside")
    assert lib_ter.BeamEditDistance is original
