"""The one home of content hashes: config hashes, hashes of JSON parts, file sha256.

Every function here is a frozen format: its output names cached results and published entries, so
changing one would silently orphan caches or split leaderboards. Add a new function instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def config_hash(value: Any) -> str:
    """``"sha256:<hex>"`` of ``value``'s canonical JSON (sorted keys, no spaces, ASCII escapes).

    The config hash of builders, protocol runs, training runs (their semantic fields) and leaderboard
    rule bodies. ``value`` must be JSON-serialisable as it is (dump pydantic models with
    ``model_dump(mode="json")`` first).
    """
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parts_sha256(*parts: Any) -> str:
    """Hex sha256 over the parts, each as sorted-key JSON (``default=str``) followed by a NUL byte.

    The cache key of the protocol's steps: parts are file hashes, settings and names, so two calls with
    the same parts in the same order give the same key, and no two part lists collide by concatenation.
    """
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=str).encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks (never the whole file at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
