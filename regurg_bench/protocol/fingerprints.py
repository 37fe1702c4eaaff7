"""Fingerprints of the weights a run actually used: the base model, every generator checkpoint, every student.

Config hashes and student keys name what a run *asked for*; these name the bytes it *got*. Two machines
with the same config hash can still train other bits (CPU kernels round differently), and where the
bits first differ tells where two runs diverged (``regurg-bench compare``): a base model pretrained
to other weights makes every self-generated target and every student differ; identical bases with
differing students point at fine-tuning. Written to ``results.json`` as ``"fingerprints"``.

Every fingerprint is :func:`~regurg_bench.generation.transformers_backend.checkpoint_fingerprint` of the
checkpoint folder (names and bytes of its weight, config and tokenizer files): the same hash a teacher
generator's signature records as its revision, so a self-generating base model and its generator
fingerprint are equal strings. ``None`` where no checkpoint of ours exists (a ``scratch:`` base that
every student initialises itself, a Hub id, Apertium or another non-checkpoint generator).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regurg_bench.hashing import file_sha256, parts_sha256


def folder_fingerprint(folder: str | Path) -> str | None:
    """``sha256:<hex>`` of a checkpoint folder; a LoRA adapter folder without ``config.json`` is named by
    its weight files' hashes instead. None when the folder does not exist."""
    from regurg_bench.generation.transformers_backend import checkpoint_fingerprint

    folder = Path(folder)
    if not folder.is_dir():
        return None
    if (folder / "config.json").is_file():
        return checkpoint_fingerprint(folder)
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".safetensors", ".bin"))
    if not weights:
        return None
    return "sha256:" + parts_sha256(*[(p.name, file_sha256(p)) for p in weights])


def base_model_fingerprint(spec: str) -> str | None:
    """The fingerprint of the base model ``spec`` names (an embedded base model, a registry model, a local
    folder); None for ``scratch:<preset>`` (no shared weights) and for anything that is not on disk."""
    if spec.startswith("scratch:"):
        return None
    from regurg_bench.training.trainer import resolve_model_spec

    folder = resolve_model_spec(spec)  # built or fetched already: the students were trained from it
    return folder_fingerprint(folder) if folder is not None else None


def generator_fingerprint(signature: dict[str, Any]) -> str | None:
    """A generator's checkpoint fingerprint from its recorded signature (the manifest's): local checkpoints
    are named by their content hash; Apertium's revision is a package version, not weights (None)."""
    revision = signature.get("revision")
    if signature.get("model") == "local" and isinstance(revision, str) and revision.startswith("sha256:"):
        return revision
    return None


def weight_fingerprints(cfg, students: dict[str, Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """``{"base_model": fp, "generators": {name: fp}, "students": {name: fp}}`` for a scored run (the students
    are :class:`~regurg_bench.protocol.plan.Student` with their folders; a merged LoRA student is named by
    its merged model, the one that was evaluated)."""
    from regurg_bench.protocol.plan import model_dir

    return {"base_model": base_model_fingerprint(str(cfg.train.get("base_model", "scratch:tiny"))),
            "generators": {g: generator_fingerprint(sig) for g, sig in manifest.get("generators", {}).items()},
            "students": {name: folder_fingerprint(model_dir(s.dir)) if s.dir else None
                         for name, s in students.items()}}
