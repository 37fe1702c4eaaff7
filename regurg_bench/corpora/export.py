"""Write pairs out as JSONL, TSV or Moses plain text (``regurg-bench corpus export``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path

from regurg_bench.atomic import atomic_write
from regurg_bench.corpora.base import Pair


def export_pairs(pairs: Iterable[Pair], out: Path, fmt: str, src_lang: str, tgt_lang: str
                 ) -> tuple[list[Path], int]:
    """Stream ``pairs`` to ``out``; every file appears only once complete. Returns (paths, count)."""
    count = 0
    if fmt == "moses":
        paths = [Path(f"{out}.{src_lang}"), Path(f"{out}.{tgt_lang}")]
        with contextlib.ExitStack() as stack:
            src_f, tgt_f = (stack.enter_context(atomic_write(p)) for p in paths)
            for p in pairs:
                src_f.write(p.source + "\n")
                tgt_f.write(p.target + "\n")
                count += 1
        return paths, count
    with atomic_write(out) as handle:
        if fmt == "tsv":
            # Plain tab-joined rows (no CSV quoting): our sources normalise whitespace, so fields
            # never contain tabs or newlines, and quotes in text stay as they are.
            handle.write("id\tsource\ttarget\n")
            for p in pairs:
                handle.write(f"{p.id}\t{p.source}\t{p.target}\n")
                count += 1
        elif fmt == "jsonl":
            for p in pairs:
                handle.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
                count += 1
        else:
            raise ValueError(f"unknown export format {fmt!r}; use jsonl, tsv or moses")
    return [out], count
