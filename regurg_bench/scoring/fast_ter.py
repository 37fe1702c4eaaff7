"""sacrebleu's TER edit distance with a leaner inner loop: the same numbers, ~3x faster.

TER's sentence statistics are most of what scoring costs: sacrebleu's ``BeamEditDistance._edit_distance``
(a pure-Python double loop over the beam) runs ~20 times per sentence while ``_shift`` tries shifts.
:class:`RowwiseBeamEditDistance` computes the same beam-limited Levenshtein rows, with the same costs, the
same tie-breaking (match or substitution, then deletion, then insertion, each taken only when strictly
cheaper than the cell so far, which starts at sacrebleu's "infinity"), the same prefix cache (rows reused
by hypotheses that share a prefix, even when computed under another hypothesis length's beam, and the
same cache limit) and the same trace. What differs is only how a row is held: a list of costs and a list
of operations instead of a list of fresh (cost, operation) tuples, and no tuple of three candidates per
cell. (A numpy version of a row, with insertion as a running minimum, was slower: the beam is ~50 cells.)

:func:`fast_ter` swaps the class into sacrebleu's ``lib_ter`` for the block it wraps (TER's
``translation_edit_rate`` looks the class up there at each call). Equality with sacrebleu's own class is
tested on real and adversarial sentences (``tests/test_scoring_fast_ter.py``); sacrebleu is pinned by
its version in every signature, so a change there is a new cache key and a failing test, not a silent
difference.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

from sacrebleu.metrics import lib_ter

_INF = lib_ter._INT_INFINITY


class RowwiseBeamEditDistance(lib_ter.BeamEditDistance):
    """sacrebleu's ``BeamEditDistance`` with a row as two flat lists (costs, operations)."""

    def __init__(self, words_ref: list[str]):
        super().__init__(words_ref)
        n = self._n_words_ref
        self._initial_row = ([i * lib_ter._COST_INS for i in range(n + 1)], [lib_ter._OP_INS] * (n + 1))

    def _edit_distance(self, words_h, start_h, cache):
        n_h, n_r, ref = len(words_h), self._n_words_ref, self._words_ref
        rows = list(cache)
        length_ratio = n_r / n_h if words_h else 1
        beam_width = math.ceil(length_ratio / 2 + lib_ter._BEAM_WIDTH) \
            if lib_ter._BEAM_WIDTH < length_ratio / 2 else lib_ter._BEAM_WIDTH
        inf, undef, nop, sub, dele, ins = _INF, lib_ter._OP_UNDEF, lib_ter._OP_NOP, lib_ter._OP_SUB, \
            lib_ter._OP_DEL, lib_ter._OP_INS
        assert lib_ter._COST_SUB == lib_ter._COST_DEL == lib_ter._COST_INS == 1  # the +1s below
        for i in range(start_h + 1, n_h + 1):
            prev = rows[i - 1][0]
            pseudo_diag = math.floor(i * length_ratio)
            min_j = max(0, pseudo_diag - beam_width)
            max_j = n_r + 1 if i == n_h else min(n_r + 1, pseudo_diag + beam_width)
            costs, ops = [inf] * (n_r + 1), [undef] * (n_r + 1)
            left = inf  # the cell before the window: untouched, "infinite"
            start = min_j
            if min_j == 0 and max_j > 0:  # cell 0: a deletion, unconditionally (as sacrebleu)
                left = costs[0] = prev[0] + 1
                ops[0] = dele
                start = 1
            word = words_h[i - 1]
            for j, ref_word, diagonal, above in zip(range(start, max_j), ref[start - 1:max_j - 1],
                                                    prev[start - 1:max_j - 1], prev[start:max_j], strict=True):
                # sacrebleu's order: match/substitution, then deletion, then insertion, each taken only
                # when strictly cheaper than the cell so far (which starts at "infinity")
                if word == ref_word:
                    best, op = diagonal, nop
                else:
                    best, op = diagonal + 1, sub
                if best >= inf:
                    best, op = inf, undef
                if above + 1 < best:
                    best, op = above + 1, dele
                if left + 1 < best:
                    best, op = left + 1, ins
                costs[j] = left = best
                ops[j] = op
            rows.append((costs, ops))
        trace = []
        i, j = n_h, n_r
        while i > 0 or j > 0:
            op = rows[i][1][j]
            trace.append(op)
            if op == sub or op == nop:
                i, j = i - 1, j - 1
            elif op == ins:
                j -= 1
            elif op == dele:
                i -= 1
            else:
                raise Exception(f"unknown operation {op!r}")
        return rows[-1][0][-1], rows[len(cache):], "".join(reversed(trace))

    def _add_cache(self, words_hyp, mat):
        """sacrebleu's, storing the row objects themselves (they are never changed after they are made)."""
        if self._cache_size >= lib_ter._MAX_CACHE_SIZE:
            return
        node = self._cache
        skip_num = len(words_hyp) - len(mat)
        for i in range(skip_num):
            node = node[words_hyp[i]][0]
        for word, row in zip(words_hyp[skip_num:], mat, strict=True):
            if word not in node:
                node[word] = ({}, row)
                self._cache_size += 1
            node = node[word][0]


#: sacrebleu releases whose ``lib_ter`` this class was checked against (tests/test_scoring_fast_ter.py);
#: under any other, :func:`fast_ter` leaves sacrebleu's own class in place
CHECKED_SACREBLEU = ("2.6.",)


def supported() -> bool:
    import sacrebleu

    return sacrebleu.__version__.startswith(CHECKED_SACREBLEU)


@contextlib.contextmanager
def fast_ter() -> Iterator[None]:
    """Within the block, sacrebleu's TER uses :class:`RowwiseBeamEditDistance` (same statistics), on a
    sacrebleu release it was checked against; otherwise the block runs sacrebleu's own."""
    if not supported():
        yield
        return
    original = lib_ter.BeamEditDistance
    lib_ter.BeamEditDistance = RowwiseBeamEditDistance
    try:
        yield
    finally:
        lib_ter.BeamEditDistance = original
