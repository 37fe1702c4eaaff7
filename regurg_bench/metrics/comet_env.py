"""The COMET environment: ``unbabel-comet`` in its own virtual environment, created by one command.

Why a separate environment: ``unbabel-comet==2.2.7`` pins ``transformers<5``, ``numpy<2`` and
``huggingface-hub<1`` and needs ``setuptools<81`` (torchmetrics 0.10 imports ``pkg_resources``); our
main environment has transformers 5 and numpy 2 (and vLLM needs transformers>=5.16). Installing
COMET next to them would downgrade the harness's own stack. So COMET runs in a venv of its own, as a
worker process (:mod:`regurg_bench.metrics.comet_worker`, JSON lines over stdin/stdout), and the
main environment never imports it.

Create it (once; ~1 min and ~1.4 GB with the on-disk CPU torch wheel)::

    python -m regurg_bench.metrics.comet_env            # (CLI: regurg-bench comet setup)
    python -m regurg_bench.metrics.comet_env --check    # print the stamp, exit 1 if missing

Where: ``<cache_dir>/envs/comet-2.2.7`` (``REGURG_BENCH_CACHE`` moves it). ``torch==2.13.0`` is
installed FIRST so that pip never resolves a CUDA build; then ``unbabel-comet==2.2.7`` with the
pins below. The venv is built under a temporary name and ``os.replace``-d into place after an import
check, with a stamp (versions, pins, creation time) written last, under a ``flock``: a killed
creation never leaves a half environment under the final name.

``REGURG_BENCH_COMET_PYTHON=/path/to/python`` uses an existing interpreter that has ``unbabel-comet``
(e.g. a conda env on a GPU box) instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from regurg_bench.assets import cache_dir, file_lock
from regurg_bench.atomic import atomic_folder

COMET_VERSION = "2.2.7"
TORCH_REQUIREMENT = "torch==2.13.0"
#: What goes into the environment after torch. The pins are COMET 2.2.7's own upper bounds, stated
#: explicitly so that a resolver change cannot pull a combination COMET was never tested with.
REQUIREMENTS = (f"unbabel-comet=={COMET_VERSION}", "transformers<5", "numpy<2", "huggingface-hub<1",
                "setuptools<81")
PYTHON_ENV = "REGURG_BENCH_COMET_PYTHON"
STAMP = "regurg_bench_comet_env.json"


class CometEnvError(RuntimeError):
    pass


def env_dir() -> Path:
    return cache_dir() / "envs" / f"comet-{COMET_VERSION}"


def _python_in(folder: Path) -> Path:
    return folder / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def read_stamp(folder: Path | None = None) -> dict | None:
    folder = folder or env_dir()
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("requirements") != list(REQUIREMENTS) or not _python_in(folder).exists():
        return None
    return stamp


def comet_python(create: bool = False) -> Path:
    """The interpreter of the COMET environment; with ``create=True`` it is created when missing."""
    explicit = os.environ.get(PYTHON_ENV)
    if explicit:
        return Path(explicit)
    if read_stamp() is not None:
        return _python_in(env_dir())
    if create:
        create_env()
        return _python_in(env_dir())
    raise CometEnvError(
        "the COMET environment does not exist yet. Create it once with\n"
        "    python -m regurg_bench.metrics.comet_env        (regurg-bench comet setup)\n"
        f"(a venv with {TORCH_REQUIREMENT} + {' '.join(REQUIREMENTS)}, ~1.4 GB under {env_dir()}), "
        f"or set {PYTHON_ENV} to a Python that has unbabel-comet=={COMET_VERSION}.")


def _pip(python: Path, *args: str, log) -> None:
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", *args]
    print(f"[comet-env] {' '.join(cmd[3:])}", file=log, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise CometEnvError(f"`pip install {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")


_CHECK = ("import json, comet, torch, transformers, numpy, pytorch_lightning, importlib.metadata as m;"
          "print(json.dumps({d: m.version(d) for d in ('unbabel-comet', 'torch', 'transformers', 'numpy',"
          " 'pytorch-lightning', 'huggingface-hub', 'setuptools', 'sentencepiece')}))")


def create_env(force: bool = False, log=sys.stderr) -> dict:
    """Create the COMET environment (idempotent) and return its stamp."""
    target = env_dir()
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(target.parent / f".{target.name}.lock"):
        stamp = read_stamp(target)
        if stamp is not None and not force:
            return stamp
        for stale in target.parent.glob(f".{target.name}.*.part"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.perf_counter()
        # A venv's interpreter is a symlink plus pyvenv.cfg (absolute base-Python path), so the
        # folder can be renamed; we only ever run `<env>/bin/python ...`, never its scripts.
        with atomic_folder(target) as tmp:
            print(f"[comet-env] creating {target} (about a minute)", file=log, flush=True)
            subprocess.run([sys.executable, "-m", "venv", str(tmp)], check=True)
            python = _python_in(tmp)
            _pip(python, TORCH_REQUIREMENT, log=log)  # FIRST: the CPU wheel, never a CUDA build
            _pip(python, *REQUIREMENTS, log=log)
            proc = subprocess.run([str(python), "-c", _CHECK], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise CometEnvError(f"the new COMET environment does not import:\n{proc.stderr[-3000:]}")
            stamp = {"comet_version": COMET_VERSION, "torch_requirement": TORCH_REQUIREMENT,
                     "requirements": list(REQUIREMENTS), "versions": json.loads(proc.stdout),
                     "seconds": round(time.perf_counter() - started, 1),
                     "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            (tmp / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
            os.chmod(tmp, 0o755)
        print(f"[comet-env] ready in {stamp['seconds']} s: {stamp['versions']}", file=log, flush=True)
        return stamp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m regurg_bench.metrics.comet_env",
                                     description="Create the isolated unbabel-comet environment.")
    parser.add_argument("--check", action="store_true", help="only report; exit 1 when missing")
    parser.add_argument("--force", action="store_true", help="re-create it")
    args = parser.parse_args(argv)
    if args.check:
        stamp = read_stamp()
        print(json.dumps({"path": str(env_dir()), "stamp": stamp}, indent=2))
        return 0 if stamp else 1
    stamp = create_env(force=args.force)
    print(json.dumps({"path": str(env_dir()), "python": str(_python_in(env_dir())), "stamp": stamp}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
