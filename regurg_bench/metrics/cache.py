"""A content-addressed, persistent cache of segment scores (SQLite).

Key = sha256 of (metric signature, source, hypothesis, reference), so a score is reused only for the
exact same metric (the signature names the checkpoint by its sha256, the library version and the
mode) on the exact same texts. Why SQLite rather than a JSONL file: concurrent processes (several
lm-eval runs, pytest workers) can read and write safely (WAL journal, busy timeout); every
:meth:`ScoreCache.put_many` is one transaction, so a killed process leaves either all or none of a
batch; look-ups of thousands of keys are one indexed query. Only finite floats are stored: a NaN or
infinite score raises instead of being cached (and reported) silently.

Location: ``<cache_dir>/scores.sqlite`` (``REGURG_BENCH_CACHE`` moves it); ``REGURG_BENCH_SCORE_CACHE=0``
disables it.
"""

from __future__ import annotations

import hashlib
import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

from regurg_bench.assets import cache_dir

DISABLE_ENV = "REGURG_BENCH_SCORE_CACHE"
_SEP = "\x1f"  # ASCII unit separator: cannot be confused with text boundaries


def score_key(signature: str, source: str | None, hypothesis: str, reference: str | None) -> str:
    """The cache key of one segment score. ``None`` (field not used by the metric) differs from ``""``."""
    parts = [signature, "\x00" if source is None else source, hypothesis,
             "\x00" if reference is None else reference]
    return hashlib.sha256(_SEP.join(parts).encode("utf-8")).hexdigest()


def default_cache_path() -> Path:
    return cache_dir() / "scores.sqlite"


def cache_disabled() -> bool:
    return os.environ.get(DISABLE_ENV, "").strip().lower() in {"0", "false", "no", "off"}


class ScoreCache:
    """``get_many``/``put_many`` over a SQLite table ``scores(key TEXT PRIMARY KEY, value REAL)``."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value REAL NOT NULL,"
                         " signature TEXT NOT NULL)")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=60, isolation_level="DEFERRED")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, float]:
        """The cached scores of those ``keys`` that are present."""
        found: dict[str, float] = {}
        conn = self._conn()
        unique = list(dict.fromkeys(keys))
        for i in range(0, len(unique), 900):  # SQLite's host-parameter limit
            chunk = unique[i:i + 900]
            rows = conn.execute(f"SELECT key, value FROM scores WHERE key IN ({','.join('?' * len(chunk))})",
                                chunk).fetchall()
            found.update(rows)
        return found

    def put_many(self, items: Iterable[tuple[str, float]], signature: str) -> None:
        """Store scores in one transaction; refuses non-finite values (nothing is written then)."""
        rows = []
        for key, value in items:
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"refusing to cache a non-finite score ({value}) for metric {signature}")
            rows.append((key, value, signature))
        with self._conn() as conn:  # one transaction: all rows or none
            conn.executemany("INSERT OR REPLACE INTO scores (key, value, signature) VALUES (?, ?, ?)", rows)

    def count(self, signature: str | None = None) -> int:
        if signature is None:
            return self._conn().execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM scores WHERE signature = ?", (signature,)).fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
