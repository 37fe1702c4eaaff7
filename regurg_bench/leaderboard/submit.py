"""Turn a finished run folder into a checked leaderboard entry, and re-check entry files.

``submit``: read ``RUN_DIR/results.json`` (size-limited, strict JSON, schema-checked), gather the files
its numbers come from into an evidence bundle (:mod:`.evidence`), and build the entry *from that
bundle*: provenance and the rules of a comparable entry (:mod:`.rules`), every claimed number
recomputed from the logged samples (:mod:`.verify`), duplicates refused; then write the bundle to
``<root>/<leaderboard>/evidence/<sha256>.jsonl.gz`` and the entry to
``<root>/<leaderboard>/entries/<entry-id>.json``, atomically. ``leaderboard validate`` rebuilds every
entry from its bundle the same way and rejects any difference. The entry id is ``<model>-<first 12 hex digits of the entry's content hash>``: the same
run submitted twice gives the same id and the same bytes.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from regurg_bench.leaderboard import evidence, schema, verifications
from regurg_bench.leaderboard.curve import curve_part
from regurg_bench.leaderboard.evidence import RunFiles
from regurg_bench.leaderboard.provenance import check_provenance, version_str
from regurg_bench.leaderboard.rules import check_required_conditions, entry_flags, violation
from regurg_bench.leaderboard.safe_io import inside, loads_strict, read_bounded, read_json, write_file
from regurg_bench.leaderboard.schema import (
    CURVE_ENTRY_SCHEMA,
    ENTRY_SCHEMA,
    OLD_ENTRY_SCHEMAS,
    LeaderboardEntry,
    LeaderboardEntryV1,
    RunResults,
    SubmissionError,
    check_name,
)
from regurg_bench.leaderboard.verify import verify_numbers
from regurg_bench.leaderboard.verify_collapse import verify_collapse
from regurg_bench.results import validated

DEFAULT_ROOT = Path("leaderboards")


def entries_dir(root: str | Path, leaderboard: str) -> Path:
    """``<root>/<leaderboard>/entries`` (the leaderboard name checked for path tricks)."""
    return Path(root) / check_name("leaderboard", leaderboard) / "entries"


def parse_results(text: str, label: str = "results.json") -> RunResults:
    """A results.json text, strictly parsed (:func:`.safe_io.loads_strict`) and schema-checked."""
    return validated(RunResults, loads_strict(text, label), label)


def load_run(run_dir: str | Path) -> tuple[RunResults, str]:
    """``RUN_DIR/results.json``, size-limited, strictly parsed and schema-checked, with its text."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise SubmissionError(f"{run_dir}: no such run folder")
    text = read_bounded(inside(run_dir, "results.json", "results.json"), schema.MAX_RESULTS_BYTES, "results.json")
    return parse_results(text), text


def entry_digest(body: dict[str, Any]) -> str:
    """sha256 of the entry's canonical JSON without its ``entry_id``."""
    canonical = json.dumps({k: v for k, v in body.items() if k != "entry_id"}, sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def finalize_entry(body: dict[str, Any]) -> LeaderboardEntry:
    """Validate ``body`` (an entry without ``entry_id``) and give it its content-derived id."""
    draft = validated(LeaderboardEntry, {**body, "entry_id": "draft"}, "entry")
    dumped = draft.model_dump(mode="json", by_alias=True)
    return draft.model_copy(update={"entry_id": f"{draft.model}-{entry_digest(dumped)[:12]}"})


def _entry_version(res: RunResults, version: str | None) -> str:
    """The schema the entry is built under: ``version`` (an entry re-checked under its own), else the newest
    one for its content (v3 with a collapse curve, v2 without: plain entries keep their bytes)."""
    if version == CURVE_ENTRY_SCHEMA and res.collapse is None:
        raise SubmissionError(f"rule 'evidence': a {version} entry, but its evidence has no collapse section")
    # a v2 entry of a collapse run (made before v3) is re-checked as v2
    return version or (CURVE_ENTRY_SCHEMA if res.collapse is not None else ENTRY_SCHEMA)


def entry_from_evidence(files: RunFiles, leaderboard: str, model_name: str | None,
                        evidence_ref: dict[str, Any], version: str | None = None) -> LeaderboardEntry:
    """Check the run that ``files`` hold against every rule and build its entry (``submit`` and
    ``leaderboard validate`` both come here, so a stored entry is what its evidence gives, or nothing).
    ``version``: the entry schema to build (default: the newest for the run, see :func:`_entry_version`)."""
    check_name("leaderboard", leaderboard)
    res = parse_results(files.text("results.json", schema.MAX_RESULTS_BYTES, "results.json"))
    version = _entry_version(res, version)
    if model_name is None and schema.name_problem(res.name):
        raise SubmissionError(f"run name {res.name!r} cannot be the model name ({schema.name_problem(res.name)}): "
                              "pass --model-name")
    model = check_name("model", model_name if model_name is not None else res.name)
    metrics = list(res.scores.get(res.tasks[0], {}).get("real", {}))
    try:
        check_provenance(label="results.json", tasks=res.tasks, metrics=metrics, lm_eval_version=res.lm_eval_version,
                         task_versions=res.task_versions, signatures=res.sacrebleu_signatures,
                         fingerprints={t: fp.model_dump() for t, fp in res.test_set_fingerprints.items()})
    except SubmissionError as err:
        raise violation("same-task-and-signatures", str(err)) from None
    check_required_conditions(res.config, res.conditions, res.config_hash, res.resolved)
    verified = verify_numbers(files, res)
    if version == CURVE_ENTRY_SCHEMA:  # the curve the entry carries, from its students' samples
        verify_collapse(files, res)
    flags = entry_flags(verified.plausibility, verified.near_copies, {t: res.scores[t] for t in res.tasks})
    real = sorted((n, s) for n, s in res.students.items() if s.condition == "real")
    base_model = real[0][1].base_model if real and real[0][1].base_model else str(
        (res.config.get("train") or {}).get("base_model", "unknown"))
    tasks = list(res.tasks)
    body = {
        "schema": version,
        "leaderboard": leaderboard,
        "model": model,
        "base_model": base_model,
        "run_name": res.name,
        "config_hash": res.config_hash,
        "build_config_hash": res.data.build_config_hash,
        "seeds": sorted({seed for c in res.conditions.values() for seed in c.seeds}),
        "tasks": tasks,
        "task_versions": {t: version_str(res.task_versions[t]) for t in tasks},
        "lm_eval_version": res.lm_eval_version,
        "sacrebleu_signatures": {m: res.sacrebleu_signatures[m] for m in metrics},
        "test_set_fingerprints": {t: res.test_set_fingerprints[t].model_dump() for t in tasks},
        "n_test_sentences": verified.n_sentences,
        "metrics": metrics,
        "scoring": res.scoring.model_dump(include=set(schema.Scoring.model_fields)),
        "conditions": {c: info.model_dump(include={"kind", "generator", "seeds"}) for c, info in res.conditions.items()},
        "scores": {t: {c: {m: s.strict().model_dump() for m, s in per.items()} for c, per in res.scores[t].items()}
                   for t in tasks},
        "degradation": {t: {c: {m: e.model_dump() for m, e in per.items()}
                            for c, per in res.degradation.get(t, {}).items()} for t in tasks},
        "recovery": {t: {c: {b: {m: e.model_dump() for m, e in per.items()} for b, per in bases.items()}
                         for c, bases in res.recovery.get(t, {}).items()} for t in tasks},
        "plausibility": verified.plausibility,
        "flags": flags,
        "evidence": evidence_ref,
        "fingerprints": res.fingerprints.model_dump() if res.fingerprints is not None else None,
        "collapse": curve_part(res.collapse, tasks) if version == CURVE_ENTRY_SCHEMA else None,
    }
    return finalize_entry(body)


def prepare(run_dir: str | Path, leaderboard: str, model_name: str | None = None
            ) -> tuple[LeaderboardEntry, bytes]:
    """Gather a run folder's evidence and build its entry from that evidence: (entry, gzipped bundle)."""
    check_name("leaderboard", leaderboard)
    run_dir = Path(run_dir)
    res, text = load_run(run_dir)
    files = evidence.gather(run_dir, text, res)
    packed, digest, size = evidence.pack(files)
    entry = entry_from_evidence(evidence.BundleFiles(files, "bundle"), leaderboard, model_name,
                                {"sha256": digest, "files": len(files), "bytes": size})
    return entry, packed


def make_entry(run_dir: str | Path, leaderboard: str, model_name: str | None = None) -> LeaderboardEntry:
    """Check a run folder and build its entry; raise :class:`SubmissionError` naming what is wrong."""
    return prepare(run_dir, leaderboard, model_name)[0]


def _same_result(a: LeaderboardEntry, b: LeaderboardEntry) -> bool:
    return a.config_hash == b.config_hash and a.model == b.model and a.scores == b.scores


def submit(run_dir: str | Path, leaderboard: str, root: str | Path = DEFAULT_ROOT,
           model_name: str | None = None) -> Path:
    """Check ``run_dir``, store its evidence and write its entry file; return the entry file's path."""
    entry, packed = prepare(run_dir, leaderboard, model_name)
    folder = entries_dir(root, leaderboard)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            other = read_entry(path, leaderboard, recheck=False)
        except SubmissionError:
            continue  # a broken entry is `leaderboard validate`'s business, not a reason to refuse this one
        if _same_result(entry, other):
            raise SubmissionError(f"duplicate entry: {path} already holds model {entry.model!r} with config hash "
                                  f"{entry.config_hash} and the same scores")
    target = folder / f"{entry.entry_id}.json"
    if target.exists():
        raise SubmissionError(f"duplicate entry: {target} already exists")
    evidence.store(folder.parent, packed, entry.evidence.sha256)
    write_file(target, entry.to_json())
    return target


def _first_difference(a: Any, b: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (field, stored, recomputed) where two JSON values differ, in sorted key order."""
    if isinstance(a, dict) and isinstance(b, dict):
        inner = [(a.get(k), b.get(k), f"{path}.{k}" if path else str(k)) for k in sorted(set(a) | set(b))]
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        inner = [(x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True))]
    else:
        return None if a == b else (path or "(entry)", a, b)
    return next(filter(None, (_first_difference(x, y, p) for x, y, p in inner)), None)


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def read_entry(path: Path, leaderboard: str, recheck: bool = True) -> LeaderboardEntry:
    """Read and fully re-check one entry file of ``leaderboard``: schema (its own version's), name, id, and
    (``recheck``) every number rebuilt from its evidence under every rule, under the entry's schema version.
    A v1 entry (no evidence) is read and its id checked with ``recheck=False``; re-checking it is refused."""
    label = f"{leaderboard}/entries/{path.name}"
    if path.is_symlink():
        raise SubmissionError(f"{label}: entry files must be plain files, not symlinks")
    data = read_json(path, schema.MAX_ENTRY_BYTES, label)
    old = isinstance(data, dict) and data.get("schema") in OLD_ENTRY_SCHEMAS  # read under its own version's model
    entry = validated(LeaderboardEntryV1 if old else LeaderboardEntry, data, label)
    if entry.leaderboard != leaderboard:
        raise SubmissionError(f"{label}: field 'leaderboard' is {entry.leaderboard!r}, but the file is on "
                              f"leaderboard {leaderboard!r}")
    if path.name != f"{entry.entry_id}.json":
        raise SubmissionError(f"{label}: field 'entry_id' is {entry.entry_id!r}, but the file is {path.name}")
    # v1 ids hash the file as written (its model fills in fields v1 never wrote); v2/v3 ids hash the model
    body = data if old else entry.model_dump(mode="json", by_alias=True)
    expected = f"{entry.model}-{entry_digest(body)[:12]}"
    if entry.entry_id != expected:
        raise SubmissionError(f"{label}: its content does not match its entry id {entry.entry_id!r} (expected "
                              f"{expected!r}): edited by hand after submission?")
    if old and recheck:
        raise SubmissionError(f"{label}: rule 'evidence': schema {entry.schema_id} entries carry no evidence, so "
                              f"their numbers cannot be re-checked; submit the run again ({ENTRY_SCHEMA})")
    if not recheck:
        return entry  # type: ignore[return-value]  # v1 entries too: read only (the archive's)
    files = evidence.load(path.parent.parent, entry.evidence.sha256, label)
    try:
        rebuilt = entry_from_evidence(evidence.BundleFiles(files, entry.evidence.sha256), leaderboard, entry.model,
                                      entry.evidence.model_dump(), version=entry.schema_id)
    except SubmissionError as err:
        raise SubmissionError(f"{label}: {err}") from None
    diff = _first_difference(body, rebuilt.model_dump(mode="json", by_alias=True))  # body: the stored entry
    if diff:
        field, claimed, recomputed = diff
        raise SubmissionError(f"{label}: rule 'evidence': field '{field}' is {_short(claimed)}, but recomputed from "
                              f"its evidence it is {_short(recomputed)}")
    return entry


def validate_leaderboard(root: str | Path, leaderboard: str) -> list[LeaderboardEntry]:
    """Every entry of ``leaderboard`` re-checked, ordered by (model, entry id); duplicates are errors."""
    folder = entries_dir(root, leaderboard)
    if not folder.is_dir():
        raise SubmissionError(f"no leaderboard {leaderboard!r}: {folder} does not exist")
    entries: list[tuple[Path, LeaderboardEntry]] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue  # .gitkeep, and atomic_write's temporary files
        if path.suffix != ".json" or not (path.is_file() or path.is_symlink()):
            raise SubmissionError(f"{leaderboard}/entries/{path.name}: unexpected file (entries are <entry-id>.json)")
        entry = read_entry(path, leaderboard)
        for other_path, other in entries:
            if _same_result(entry, other):
                raise SubmissionError(f"duplicate entry: {leaderboard}/entries/{path.name} and "
                                      f"{leaderboard}/entries/{other_path.name} hold the same model, config hash "
                                      "and scores")
        entries.append((path, entry))
    verifications.check_board(folder.parent, {e.entry_id for _, e in entries})
    return sorted((e for _, e in entries), key=lambda e: (e.model, e.entry_id))
