"""The generation cache: content-addressed by (generator signature, source, direction), append-only.

Layout under ``root``::

    <signature hash, 32 hex>/signature.json            the full signature (for people; written once)
    <signature hash, 32 hex>/shard-<host>-<pid>-<uuid>.jsonl   one per writing cache instance

Every row is one JSON line ``{"key", "status", "text", "reason", "n_tokens", "source", "src_lang",
"tgt_lang", "time"}``; ``key = sha256(signature.hash NUL source NUL src_lang NUL tgt_lang)``.

Why this design (and not one file per batch, or a database):

* **Crash safety.** A batch is committed as *one* ``os.write`` of complete lines to an ``O_APPEND``
  descriptor, then ``fsync``. ``kill -9`` at any moment leaves either nothing or a prefix of that
  write; a prefix is whole lines plus at most one line without its newline. Readers use only lines
  that end in ``\\n`` and parse, so a torn tail is ignored and its rows are generated again on the next
  run: nothing committed is lost, nothing is counted twice.
* **Concurrency without locks.** Each cache instance appends only to its own shard (unique name), so
  two processes can never interleave bytes in one file. Readers pick up other processes' rows
  incrementally (:meth:`GenerationCache.refresh` reads each shard from where it stopped, up to the
  last complete line). If two processes generate the same key at the same time both rows are kept on
  disk; once both are visible every reader resolves them the same way (the earliest committed ``ok``
  row, ties broken by shard name and position). Deterministic generators write the same text anyway.
* **Few files.** One shard per run per signature (a new one only after a failed write) rather than one
  file per batch (30k pairs at batch size 32 would be ~1,000 files); JSONL stays greppable.

Empty and failed generations are rows too (``status`` ``empty``/``failed`` with a ``reason``). A key
whose rows are all non-``ok`` is generated again until it has been tried ``max_attempts`` times;
after that it is reported in :meth:`GenerationCache.summary`. Lookups never turn a non-``ok`` row into
a target.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.generation.base import GenerationResult, GeneratorSignature

log = logging.getLogger(__name__)

#: Default number of tries of one source under one signature before it is reported as failed.
DEFAULT_MAX_ATTEMPTS = 3
_SHARD_GLOB = "shard-*.jsonl"


def cache_key(signature_hash: str, source: str, src_lang: str, tgt_lang: str) -> str:
    """The content address of one generation (hex sha256)."""
    material = "\x00".join((signature_hash, source, src_lang, tgt_lang))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def signature_dir_name(signature: GeneratorSignature) -> str:
    return signature.hash.split(":", 1)[-1][:32]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """What the cache knows about one key: the resolved result (``ok`` if any row is ``ok``, else the
    latest failure) and how many times the key was tried."""

    key: str
    result: GenerationResult
    attempts: int

    @property
    def ok(self) -> bool:
        return self.result.ok


@dataclass
class CacheSummary:
    """Counts over the resolved entries of one signature, plus the keys that gave up."""

    signature_hash: str
    entries: int = 0
    ok: int = 0
    empty: int = 0
    failed: int = 0
    #: Non-ok entries that reached ``max_attempts`` (they will not be retried).
    exhausted: int = 0
    #: Rows on disk, including duplicates from concurrent writers and retried failures.
    rows: int = 0
    corrupt_lines: int = 0
    shards: int = 0
    reasons: Counter = field(default_factory=Counter)
    #: Up to 20 examples of non-ok entries: ``{"key", "status", "reason", "attempts", "source"}``.
    examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, Counter) else v) for k, v in vars(self).items()}


@dataclass(slots=True)
class _Slot:
    """Index state of one key: its winning ok row (if any) and its non-ok rows."""

    ok_rank: tuple | None = None
    ok_result: GenerationResult | None = None
    failures: int = 0
    last_failure: GenerationResult | None = None
    last_failure_rank: tuple | None = None
    source: str | None = None


class _SignatureIndex:
    """Everything loaded for one signature: per-key slots and how far each shard has been read."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.slots: dict[str, _Slot] = {}
        self.offsets: dict[str, int] = {}
        self.rows = 0
        self.corrupt = 0

    def add_row(self, row: dict[str, Any], rank: tuple) -> None:
        key = row["key"]
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = _Slot()
        self.rows += 1
        if slot.source is None:
            slot.source = row.get("source")
        status = row["status"]
        if status == "ok":
            if slot.ok_rank is None or rank < slot.ok_rank:
                slot.ok_rank = rank
                slot.ok_result = GenerationResult("ok", text=row["text"], n_tokens=row.get("n_tokens"))
        else:
            slot.failures += 1
            if slot.last_failure_rank is None or rank > slot.last_failure_rank:
                slot.last_failure_rank = rank
                slot.last_failure = GenerationResult(status, reason=row.get("reason") or "unknown",
                                                     n_tokens=row.get("n_tokens"))

    def read_new(self, skip: str | None = None) -> None:
        """Read every shard from where we stopped up to its last complete line."""
        for path in sorted(self.folder.glob(_SHARD_GLOB)):
            if path.name == skip:
                continue
            start = self.offsets.get(path.name, 0)
            try:
                with open(path, "rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n")
            if end < 0:
                continue  # nothing complete yet (or a torn first write of a dead process)
            pos = start
            for raw in data[:end + 1].split(b"\n")[:-1]:
                rank_pos = pos
                pos += len(raw) + 1
                try:
                    row = json.loads(raw)
                    if not isinstance(row, dict) or "key" not in row or row.get("status") not in (
                            "ok", "empty", "failed") or (row["status"] == "ok" and not row.get("text")):
                        raise ValueError("not a cache row")
                    self.add_row(row, (float(row.get("time", 0.0)), path.name, rank_pos))
                except (ValueError, TypeError, KeyError):
                    self.corrupt += 1
                    log.warning("generation cache: skipping unreadable line at byte %d of %s", rank_pos, path)
            self.offsets[path.name] = start + end + 1

    def entry(self, key: str) -> CacheEntry | None:
        slot = self.slots.get(key)
        if slot is None:
            return None
        attempts = slot.failures + (1 if slot.ok_result is not None else 0)
        if slot.ok_result is not None:
            result = slot.ok_result
        else:
            assert slot.last_failure is not None
            result = slot.last_failure
        return CacheEntry(key, _with(result, attempts=attempts, cached=True), attempts)


def _with(result: GenerationResult, **changes: Any) -> GenerationResult:
    return dataclasses.replace(result, **changes)


class GenerationCache:
    """A generation cache rooted at ``root`` (created if missing), shared safely between processes.

    One instance per process (or per thread): it is not thread-safe; other processes need their own.

    ``max_attempts``: how many times a source may be tried under one signature before its failure is
    final. ``fsync``: flush every commit to disk (turn off only for throwaway caches).
    """

    def __init__(self, root: str | Path, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS, fsync: bool = True) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_attempts = max_attempts
        self.fsync = fsync
        self._indexes: dict[str, _SignatureIndex] = {}
        self._writers: dict[str, tuple[int, str]] = {}  # signature hash -> (fd, shard name)
        self._host = _safe(socket.gethostname())

    # -- reading -------------------------------------------------------------------------------

    def _index(self, signature: GeneratorSignature) -> _SignatureIndex:
        index = self._indexes.get(signature.hash)
        if index is None:
            folder = self.root / signature_dir_name(signature)
            folder.mkdir(parents=True, exist_ok=True)
            sig_file = folder / "signature.json"
            if not sig_file.exists():
                with atomic_write(sig_file) as fh:
                    json.dump(signature.to_dict(), fh, indent=2, ensure_ascii=False)
                    fh.write("\n")
            index = self._indexes[signature.hash] = _SignatureIndex(folder)
            index.read_new()
        return index

    def refresh(self, signature: GeneratorSignature) -> None:
        """Pick up rows other processes committed since the last read (cheap: new bytes only)."""
        index = self._index(signature)
        own = self._writers.get(signature.hash)
        index.read_new(skip=own[1] if own else None)

    def lookup(self, signature: GeneratorSignature, source: str, src_lang: str, tgt_lang: str) -> CacheEntry | None:
        """The entry for one source, or ``None`` if it was never tried."""
        return self._index(signature).entry(cache_key(signature.hash, source, src_lang, tgt_lang))

    def needs_generation(self, entry: CacheEntry | None) -> bool:
        """True when the source was never tried, or only failed/empty fewer than ``max_attempts`` times."""
        return entry is None or (not entry.ok and entry.attempts < self.max_attempts)

    def entries(self, signature: GeneratorSignature) -> dict[str, CacheEntry]:
        """Every resolved entry of ``signature`` (after a refresh), keyed by cache key."""
        self.refresh(signature)
        index = self._index(signature)
        return {key: e for key in index.slots if (e := index.entry(key)) is not None}

    def summary(self, signature: GeneratorSignature) -> CacheSummary:
        """Counts of ok/empty/failed entries and the reasons of the failures (after a refresh)."""
        self.refresh(signature)
        index = self._index(signature)
        out = CacheSummary(signature.hash, rows=index.rows, corrupt_lines=index.corrupt,
                           shards=len(list(index.folder.glob(_SHARD_GLOB))))
        for key, slot in index.slots.items():
            entry = index.entry(key)
            assert entry is not None
            out.entries += 1
            if entry.ok:
                out.ok += 1
                continue
            setattr(out, entry.result.status, getattr(out, entry.result.status) + 1)
            out.reasons[entry.result.reason or "unknown"] += 1
            if entry.attempts >= self.max_attempts:
                out.exhausted += 1
            if len(out.examples) < 20:
                out.examples.append({"key": key, "status": entry.result.status, "reason": entry.result.reason,
                                     "attempts": entry.attempts, "source": slot.source})
        return out

    # -- writing -------------------------------------------------------------------------------

    def commit(self, signature: GeneratorSignature,
               rows: list[tuple[str, str, str, GenerationResult]]) -> list[CacheEntry]:
        """Append ``(source, src_lang, tgt_lang, result)`` rows as one atomic batch; return the resolved
        entries for them (which, for an ``ok`` row another process committed first, is that row)."""
        if not rows:
            return []
        index = self._index(signature)
        fd, shard = self._writer(signature, index)
        now = time.time()
        lines = []
        keys = []
        for source, src_lang, tgt_lang, result in rows:
            key = cache_key(signature.hash, source, src_lang, tgt_lang)
            keys.append(key)
            lines.append(json.dumps({"key": key, "status": result.status, "text": result.text,
                                     "reason": result.reason, "n_tokens": result.n_tokens, "source": source,
                                     "src_lang": src_lang, "tgt_lang": tgt_lang, "time": now},
                                    ensure_ascii=False, separators=(",", ":")))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        start = index.offsets.get(shard, 0)
        try:
            _write_all(fd, data)
            if self.fsync:
                os.fsync(fd)
        except BaseException:
            # A failed write (disk full...) may have left a torn line: never append after it. The next
            # commit opens a fresh shard; readers ignore the torn tail as after a kill.
            self._writers.pop(signature.hash, None)
            os.close(fd)
            raise
        # Index our own rows directly (we are the only writer of this shard).
        pos = start
        for line in lines:
            row = json.loads(line)
            index.add_row(row, (now, shard, pos))
            pos += len(line.encode("utf-8")) + 1
        index.offsets[shard] = pos
        return [e for key in keys if (e := index.entry(key)) is not None]

    def _writer(self, signature: GeneratorSignature, index: _SignatureIndex) -> tuple[int, str]:
        writer = self._writers.get(signature.hash)
        if writer is None:
            name = f"shard-{self._host}-{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            fd = os.open(index.folder / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o644)
            if self.fsync:  # make the new directory entry durable too
                _fsync_dir(index.folder)
            writer = self._writers[signature.hash] = (fd, name)
            index.offsets[name] = 0
        return writer

    def close(self) -> None:
        """Close the shard files (committed rows are already on disk)."""
        for fd, _ in self._writers.values():
            os.close(fd)
        self._writers.clear()

    def __enter__(self) -> GenerationCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _write_all(fd: int, data: bytes) -> None:
    """One ``os.write`` in the normal case; loop only if the kernel accepted a prefix."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)[:40] or "host"
