"""An entry's evidence: the files its numbers are computed from, stored beside the board and re-checked.

``submit`` gathers what verification reads from a run folder — ``results.json``, each student's logged
lm-eval samples (only ``doc_id``, ``target`` and the first of ``filtered_resps``: the rest of a logged
row is prompts and bookkeeping) and each student's lm-eval results file (only the versions, signatures
and scores that are compared) — into one gzipped JSON-lines bundle, content-addressed by the sha256
of its uncompressed bytes: ``<board>/evidence/<sha256>.jsonl.gz``. The entry names the hash.

``leaderboard validate`` and ``build`` read the bundle back (bounded, hash checked) and rebuild the
entry from it with the same code as ``submit``: a hand-edited entry, a missing bundle or a bundle that
does not match its hash is rejected. Nothing in a bundle is executed; it is JSON only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any, Protocol

from regurg_bench.leaderboard import schema
from regurg_bench.leaderboard.safe_io import inside, loads_strict, read_bounded, write_file
from regurg_bench.leaderboard.schema import RunResults, SubmissionError

EVIDENCE_SCHEMA = "regurg-bench/evidence/v1"
EVIDENCE_DIR = "evidence"
SUFFIX = ".jsonl.gz"
#: a bundle is read into memory: bounded compressed and uncompressed (a full 4-direction default run
#: with 3 seeds is a few MB compressed)
MAX_EVIDENCE_BYTES = 64 * 1024 * 1024
MAX_EVIDENCE_UNCOMPRESSED = 512 * 1024 * 1024
_HEX = re.compile(r"^[0-9a-f]{64}$")


class RunFiles(Protocol):
    """Where verification reads a run's files from: the run folder, or an evidence bundle."""

    def text(self, rel: str, limit: int, label: str) -> str:
        """The UTF-8 text of the file ``rel`` (relative to the run folder), at most ``limit`` bytes."""
        ...


class FolderFiles:
    """A run folder on disk (paths must stay inside it)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)

    def text(self, rel: str, limit: int, label: str) -> str:
        return read_bounded(inside(self.run_dir, rel, label), limit, f"{label} ({rel})")


class BundleFiles:
    """The files of an evidence bundle (``{relative path: text}``)."""

    def __init__(self, files: dict[str, str], label: str) -> None:
        self.files, self.label = files, label

    def text(self, rel: str, limit: int, label: str) -> str:
        if rel not in self.files:
            raise SubmissionError(f"{label}: {rel!r} is not in the evidence {self.label}")
        text = self.files[rel]
        if len(text.encode("utf-8")) > limit:
            raise SubmissionError(f"{label}: {rel} in the evidence is larger than {limit:,} bytes")
        return text


# ------------------------------------------------------------------------------ gathering
def split_jsonl(text: str) -> list[str]:
    """JSON lines split on ``\\n`` only: lm-eval writes with ``ensure_ascii=False``, so a hypothesis may
    hold U+2028, U+2029 or U+0085, which :meth:`str.splitlines` would also break on."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def trim_samples(text: str, rel: str) -> str:
    out = []
    for i, line in enumerate(split_jsonl(text), 1):
        if not line.strip():
            continue
        row = loads_strict(line, f"{rel}:{i}", allow_non_finite=True)
        if isinstance(row, dict):
            resps = row.get("filtered_resps")
            row = {"doc_id": row.get("doc_id"), "target": row.get("target"),
                   "filtered_resps": resps[:1] if isinstance(resps, list) else resps}
        out.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return "".join(line + "\n" for line in out)


def _trim_lm_eval_results(text: str, rel: str, tasks: list[str]) -> str:
    data = loads_strict(text, rel, allow_non_finite=True)
    if not isinstance(data, dict):
        return text  # verification names the problem
    def part(key: str, task: str) -> Any:
        block = data.get(key)
        return block.get(task) if isinstance(block, dict) else None

    trimmed: dict[str, Any] = {"lm_eval_version": data.get("lm_eval_version"), "versions": {}, "configs": {},
                               "results": {}}
    for task in tasks:
        trimmed["versions"][task] = part("versions", task)
        config = part("configs", task)
        meta = config.get("metadata") if isinstance(config, dict) else None
        sigs = meta.get("sacrebleu_signatures") if isinstance(meta, dict) else None
        trimmed["configs"][task] = {"metadata": {"sacrebleu_signatures": sigs}}
        scores = part("results", task)
        trimmed["results"][task] = ({k: v for k, v in scores.items() if k.endswith(",none")}
                                    if isinstance(scores, dict) else scores)
    return json.dumps(trimmed, ensure_ascii=False, sort_keys=True, indent=1) + "\n"


def gather(run_dir: Path, results_text: str, res: RunResults) -> dict[str, str]:
    """``{relative path: text}`` of every file verification reads, trimmed to what it reads."""
    files = FolderFiles(run_dir)
    out = {"results.json": results_text}
    for name in sorted(res.students):
        s = res.students[name]
        for task in res.tasks:
            rel = s.samples.get(task)
            if rel is not None and rel not in out:
                label = f"results.json: field 'students.{name}.samples.{task}'"
                out[rel] = trim_samples(files.text(rel, schema.MAX_SAMPLES_BYTES, label), rel)
        if s.results_file not in out:
            label = f"results.json: field 'students.{name}.results_file'"
            out[s.results_file] = _trim_lm_eval_results(
                files.text(s.results_file, schema.MAX_LM_EVAL_RESULTS_BYTES, label), s.results_file, list(res.tasks))
    for name, per_task in (res.collapse.samples_by_student() if res.collapse else {}).items():  # the curve's
        for task, rel in per_task.items():
            if rel not in out:
                label = f"results.json: field 'collapse.students.{name}.samples.{task}'"
                out[rel] = trim_samples(files.text(rel, schema.MAX_SAMPLES_BYTES, label), rel)
    return out


# ------------------------------------------------------------------------------ the bundle
def pack(files: dict[str, str]) -> tuple[bytes, str, int]:
    """(gzipped bundle, ``sha256:<hex>`` of its uncompressed bytes, uncompressed size): deterministic."""
    lines = [json.dumps({"schema": EVIDENCE_SCHEMA, "files": len(files)}, sort_keys=True)]
    lines += [json.dumps({"path": path, "text": files[path]}, ensure_ascii=False, sort_keys=True)
              for path in sorted(files)]
    raw = "".join(line + "\n" for line in lines).encode("utf-8")
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as handle:
        handle.write(raw)
    return buf.getvalue(), "sha256:" + hashlib.sha256(raw).hexdigest(), len(raw)


def unpack(raw: bytes, label: str) -> dict[str, str]:
    """The files of an uncompressed bundle (strict JSON, one file per line after the header)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SubmissionError(f"{label}: not UTF-8 ({err})") from None
    lines = [line for line in text.split("\n") if line]
    if not lines:
        raise SubmissionError(f"{label}: empty evidence bundle")
    head = loads_strict(lines[0], f"{label}:1")
    if not isinstance(head, dict) or head.get("schema") != EVIDENCE_SCHEMA:
        raise SubmissionError(f"{label}:1: not an evidence bundle (schema {EVIDENCE_SCHEMA})")
    files: dict[str, str] = {}
    for i, line in enumerate(lines[1:], 2):
        row = loads_strict(line, f"{label}:{i}")
        if not (isinstance(row, dict) and set(row) == {"path", "text"} and isinstance(row["path"], str)
                and isinstance(row["text"], str)) or row["path"] in files:
            raise SubmissionError(f"{label}:{i}: each line after the header is one file: a unique 'path' and its "
                                  "'text'")
        files[row["path"]] = row["text"]
    if head.get("files") != len(files):
        raise SubmissionError(f"{label}: the header announces {head.get('files')!r} files, the bundle holds "
                              f"{len(files)}")
    return files


def evidence_path(board_dir: Path, digest: str) -> Path:
    """``<board>/evidence/<hex>.jsonl.gz`` of ``sha256:<hex>``."""
    hexdigest = digest.removeprefix("sha256:")
    if not _HEX.match(hexdigest):
        raise SubmissionError(f"evidence hash {digest!r} is not sha256:<64 hex digits>")
    return board_dir / EVIDENCE_DIR / f"{hexdigest}{SUFFIX}"


def store(board_dir: Path, packed: bytes, digest: str) -> Path:
    """Write the bundle (content-addressed: an existing file of that name must hold the same content)."""
    path = evidence_path(board_dir, digest)
    if path.exists():
        load(board_dir, digest, path.name)  # same hash, same content: nothing to write
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    write_file(path, packed)
    return path


def load(board_dir: Path, digest: str, label: str) -> dict[str, str]:
    """Read the bundle ``digest`` of a board: bounded, decompressed with a cap, its hash checked."""
    path = evidence_path(board_dir, digest)
    rel = f"{board_dir.name}/{EVIDENCE_DIR}/{path.name}"
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise SubmissionError(f"{label}: rule 'evidence': {rel} must be a plain file")
    if not path.is_file():
        raise SubmissionError(f"{label}: rule 'evidence': the evidence {rel} is missing (every entry carries the "
                              "logged samples its numbers are recomputed from)")
    if path.stat().st_size > MAX_EVIDENCE_BYTES:
        raise SubmissionError(f"{label}: rule 'evidence': {rel} is larger than {MAX_EVIDENCE_BYTES:,} bytes")
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read(MAX_EVIDENCE_UNCOMPRESSED + 1)
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise SubmissionError(f"{label}: rule 'evidence': {rel} is not a gzip file ({err})") from None
    if len(raw) > MAX_EVIDENCE_UNCOMPRESSED:
        raise SubmissionError(f"{label}: rule 'evidence': {rel} decompresses to more than "
                              f"{MAX_EVIDENCE_UNCOMPRESSED:,} bytes")
    actual = "sha256:" + hashlib.sha256(raw).hexdigest()
    if actual != digest:
        raise SubmissionError(f"{label}: rule 'evidence': {rel} does not match its hash (its content hashes to "
                              f"{actual}): the evidence was changed after submission")
    return unpack(raw, rel)
