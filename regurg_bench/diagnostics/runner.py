"""``diagnose()``: every diagnostic on every condition of a split, compared by id with the human data."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from regurg_bench.corpora.base import CorpusError, Pair, fingerprint_pairs
from regurg_bench.diagnostics.base import DIAGNOSTICS, Diagnostic, DiagnosticUnavailable, StatInfo, stat_infos
from regurg_bench.diagnostics.diversity import LexicalDiversity, count_tokens
from regurg_bench.diagnostics.errors import CrossLingualSimilarity, SentenceEncoder, SimilarityScorer
from regurg_bench.diagnostics.loading import DEFAULT_INCLUDE, REAL, load_conditions
from regurg_bench.diagnostics.report import DiagnosticsReport

#: Diagnostics run by default, in report order.
DEFAULT_DIAGNOSTICS: tuple[str, ...] = ("reference", "length_ratio", "copy", "language", "similarity",
                                        "diversity", "openings", "templates", "length_spread", "repetition")


def build_diagnostics(names: Sequence[str | Diagnostic] = DEFAULT_DIAGNOSTICS, *, token_budget: int | None = None,
                      scorer: SimilarityScorer | SentenceEncoder | None = None) -> list[Diagnostic]:
    """Instances with their default settings; ``token_budget`` goes to the diversity diagnostic and
    ``scorer`` (or encoder) to the cross-lingual similarity. Instances in ``names`` are used as given."""
    for name in names:
        if isinstance(name, str) and name not in DIAGNOSTICS:
            raise DIAGNOSTICS.unknown(name)  # before any is built
    out: list[Diagnostic] = []
    for name in names:
        if isinstance(name, Diagnostic):
            out.append(name)
        elif name == "diversity":
            out.append(LexicalDiversity(token_budget=token_budget))
        elif name == "similarity":
            out.append(CrossLingualSimilarity(scorer))
        else:
            out.append(DIAGNOSTICS[name]())
    return out


def align_by_id(conditions: Mapping[str, Sequence[Pair]]) -> tuple[dict[str, list[Pair]], dict[str, int]]:
    """Keep the ids every condition has, in the human condition's order; count what each one lost."""
    if REAL not in conditions:
        raise CorpusError(f"no {REAL!r} condition among {sorted(conditions)}")
    common = set.intersection(*(set(p.id for p in pairs) for pairs in conditions.values()))
    order = [p.id for p in conditions[REAL] if p.id in common]
    aligned, dropped = {}, {}
    for name, pairs in conditions.items():
        by_id = {p.id: p for p in pairs}
        aligned[name] = [by_id[i] for i in order]
        dropped[name] = len(pairs) - len(order)
    for name, pairs in aligned.items():
        for p, r in zip(pairs, aligned[REAL], strict=True):
            if (p.source != r.source) or (p.src_lang, p.tgt_lang) != (r.src_lang, r.tgt_lang):
                raise CorpusError(f"condition {name!r}, id {p.id!r}: source or languages differ from the "
                                  f"human condition's; conditions of a split must share their sources")
    return aligned, dropped


def describe_stats(keys: Iterable[str]) -> dict[str, dict[str, object]]:
    """JSON-ready :class:`StatInfo` of each key (vocabulary-growth keys get theirs made up here)."""
    infos = stat_infos()
    out: dict[str, dict[str, object]] = {}
    for key in dict.fromkeys(keys):
        if key in infos:
            diag, info = infos[key]
        elif key.startswith("types_at_"):
            diag, info = "diversity", StatInfo(f"types in first {key.removeprefix('types_at_')} tokens", "higher")
        else:
            continue
        out[key] = {"diagnostic": diag, "family": DIAGNOSTICS[diag].family, **dataclasses.asdict(info)}
    return out


def diagnose(split: str | Path | Mapping[str, Sequence[Pair]], *,
             diagnostics: Sequence[str | Diagnostic] = DEFAULT_DIAGNOSTICS,
             include: Sequence[str] = DEFAULT_INCLUDE, limit: int | None = None,
             scorer: SimilarityScorer | SentenceEncoder | None = None,
             progress: Callable[[str], None] | None = None, label: str | None = None) -> DiagnosticsReport:
    """Run ``diagnostics`` on every condition of ``split`` and compare each with the human condition.

    ``split``: a folder with ``real.jsonl`` and ``regurg_<name>.jsonl`` (``include`` patterns pick
    other files, e.g. ``mix_*``), or a mapping ``condition -> pairs`` with a ``"real"`` entry.
    ``diagnostics``: registry names (built with default settings) or configured instances (used as
    they are). ``scorer``: the sentence encoder or similarity scorer for ``similarity`` (default: the
    project's mUSE cosine, when it can be loaded). ``limit``: only the first N shared ids. ``label`` names the split in the report (default: the path). Diversity is measured on an equal token budget: the token
    count of the condition with the fewest tokens.
    """
    if isinstance(split, str | Path):
        label = label or str(split)
        conditions = load_conditions(split, include=include)
    else:
        label = label or "<in-memory>"
        conditions = {k: list(v) for k, v in split.items()}
    aligned, dropped = align_by_id(conditions)
    if limit is not None:
        aligned = {k: v[:limit] for k, v in aligned.items()}
    n = len(aligned[REAL])
    if n == 0:
        raise CorpusError("the conditions share no ids")
    # Conditions with no tokens at all (every output empty) have no diversity to measure; the rest
    # share the smallest token count.
    budget = min((t for t in map(count_tokens, aligned.values()) if t > 0), default=None)
    instances = build_diagnostics(diagnostics, token_budget=budget, scorer=scorer)

    stats: dict[str, dict[str, float | None]] = {name: {} for name in aligned}
    notes: dict[str, str] = {}
    timing: dict[str, dict[str, float]] = {}
    for diag in instances:
        if progress:
            progress(diag.name)
        started = time.perf_counter()
        done = 0
        for name, pairs in aligned.items():
            reference = None if name == REAL else aligned[REAL]
            if diag.needs_reference and reference is None:
                stats[name].update(diag.empty())  # the human targets are the reference: nothing to measure
                continue
            try:
                values = diag.compute(pairs, reference)
                done += len(pairs)
            except DiagnosticUnavailable as why:
                notes[diag.name] = f"not available: {why}"
                values = diag.empty()
            stats[name].update(values)
        seconds = time.perf_counter() - started
        ran = done > 0 and seconds > 0
        timing[diag.name] = {"seconds": seconds, "sentences_per_s": done / seconds if ran else None}
    return DiagnosticsReport(
        split=label, conditions=list(aligned), n_pairs=n, dropped=dropped, token_budget=budget,
        stats=stats, stat_info=describe_stats(k for s in stats.values() for k in s),
        signatures={d.name: d.signature() for d in instances}, notes=notes, timing=timing,
        fingerprints={name: fingerprint_pairs(pairs) for name, pairs in aligned.items()},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )
