"""COMET worker: runs INSIDE the COMET environment (stdlib + unbabel-comet only; never imports
regurg_bench). Started by :mod:`regurg_bench.metrics.comet` as ``<comet-env>/bin/python comet_worker.py``.

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout. Everything else that
COMET, Lightning or transformers print goes to stderr (file descriptor 1 is re-pointed at stderr at
start-up, the protocol uses a private duplicate of the original stdout), so library chatter can never
corrupt a reply.

Requests::

    {"op": "load", "model": PATH_OR_HUB_ID, "local_files_only": true, "gpus": null|0|1}
        -> {"ok": true, "checkpoint": ..., "class": "RegressionMetric", "referenceless": false,
            "input_segments": [...], "encoder": ..., "device": "cpu", "versions": {...}}
    {"op": "score", "samples": [{"src": ..., "mt": ..., "ref": ...}], "batch_size": 16}
        -> {"ok": true, "scores": [...]}
    {"op": "exit"}
    any failure -> {"ok": false, "error": "...", "traceback": "..."}

Also a command for the test suite (``build-test-checkpoint``): a COMET-architecture checkpoint on a
local encoder folder with an UNTRAINED, seeded head. It proves the loading and scoring path; its
scores mean nothing and the card written beside it says so (``test_only: true``).
"""

from __future__ import annotations

import json
import os
import sys
import traceback

# Run as a script, this file's folder (regurg_bench/metrics, which holds our own comet.py) would be
# sys.path[0] and shadow the real `comet` package: drop it.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != _HERE]

_PROTO = None  # the protocol channel (original stdout)


def _reply(obj) -> None:
    _PROTO.write(json.dumps(obj, ensure_ascii=False, allow_nan=False) + "\n")
    _PROTO.flush()


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for dist in ("unbabel-comet", "torch", "transformers", "pytorch-lightning"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def _param_checksum(model) -> float:
    """Sum of |w| over all parameters (float64): shows that a checkpoint's weights really loaded."""
    import torch

    with torch.no_grad():
        return float(sum(p.detach().double().abs().sum().item() for p in model.parameters()))


def _resolve_checkpoint(model: str, local_files_only: bool) -> str:
    """A ``.ckpt`` file from a checkpoint file, a model folder (``checkpoints/model.ckpt``) or a hub id."""
    if os.path.isfile(model):
        return model
    if os.path.isdir(model):
        path = os.path.join(model, "checkpoints", "model.ckpt")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{model} has no checkpoints/model.ckpt")
        return path
    from comet import download_model

    return download_model(model, local_files_only=local_files_only)


class Worker:
    def __init__(self) -> None:
        self.model = None
        self.gpus = 0

    def load(self, req: dict) -> dict:
        import torch
        from comet import load_from_checkpoint
        from comet.models import ReferencelessRegression

        local = bool(req.get("local_files_only", True))
        ckpt = _resolve_checkpoint(req["model"], local)
        torch.manual_seed(0)
        self.model = load_from_checkpoint(ckpt, local_files_only=local)
        self.model.eval()
        gpus = req.get("gpus")
        self.gpus = (1 if torch.cuda.is_available() else 0) if gpus is None else int(gpus)
        hp = dict(self.model.hparams)
        segments = hp.get("input_segments")
        referenceless = isinstance(self.model, ReferencelessRegression) or (
            segments is not None and "ref" not in segments)
        return {"ok": True, "checkpoint": os.path.abspath(ckpt), "class": type(self.model).__name__,
                "referenceless": referenceless, "input_segments": segments,
                "encoder": hp.get("encoder_model"), "pretrained_model": hp.get("pretrained_model"),
                "device": "cuda" if self.gpus else "cpu", "versions": _versions(),
                "param_checksum": _param_checksum(self.model)}

    def score(self, req: dict) -> dict:
        if self.model is None:
            raise RuntimeError("no model loaded")
        samples = req["samples"]
        if not samples:
            return {"ok": True, "scores": []}
        out = self.model.predict(samples, batch_size=int(req.get("batch_size", 16)), gpus=self.gpus,
                                 progress_bar=False, num_workers=0)
        return {"ok": True, "scores": [float(s) for s in out.scores]}


def serve() -> int:
    global _PROTO
    _PROTO = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # C-level and Python-level prints from libraries now land on stderr
    sys.stdout = sys.stderr
    worker = Worker()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "exit":
                _reply({"ok": True})
                return 0
            if op == "ping":
                _reply({"ok": True, "versions": _versions()})
            elif op == "load":
                _reply(worker.load(req))
            elif op == "score":
                _reply(worker.score(req))
            else:
                _reply({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # report, keep serving
            _reply({"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
    return 0


# -- test-only checkpoints ---------------------------------------------------------------------------

_KINDS = {
    # the wmt22-comet-da class: reference-based regression on (src, mt, ref)
    "regression": ("regression_metric", {}),
    # the cometkiwi class: UnifiedMetric on (mt, src), no reference
    "qe": ("unified_metric", {"input_segments": ["mt", "src"], "word_level_training": False,
                              "sent_layer": "mix", "layer_transformation": "sparsemax"}),
}


def build_test_checkpoint(encoder_dir: str, out_dir: str, kind: str, seed: int = 0) -> dict:
    """Write ``out_dir/{hparams.yaml,checkpoints/model.ckpt,regurg_bench_comet_card.json}``."""
    import pytorch_lightning as ptl
    import torch
    import yaml
    from comet.models import str2model

    class_id, extra = _KINDS[kind]
    torch.manual_seed(seed)
    hparams = {"encoder_model": "BERT", "pretrained_model": os.path.abspath(encoder_dir),
               "hidden_sizes": [256], "dropout": 0.1, "layer": "mix", "pool": "avg",
               "load_pretrained_weights": True, "local_files_only": True}
    if class_id == "unified_metric":
        hparams.pop("layer")
        hparams.pop("pool")
    hparams.update(extra)
    model = str2model[class_id](**hparams)
    hp = {k: v for k, v in dict(model.hparams).items() if k not in ("load_pretrained_weights", "local_files_only")}
    hp["class_identifier"] = class_id
    os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    with open(os.path.join(out_dir, "hparams.yaml"), "w", encoding="utf-8") as fh:
        yaml.safe_dump(hp, fh)
    ckpt = {"state_dict": model.state_dict(), "hyper_parameters": hp,
            "pytorch-lightning_version": ptl.__version__, "epoch": 0, "global_step": 0}
    torch.save(ckpt, os.path.join(out_dir, "checkpoints", "model.ckpt"))
    card = {"test_only": True, "kind": kind, "class_identifier": class_id, "seed": seed,
            "encoder": os.path.abspath(encoder_dir), "param_checksum": _param_checksum(model),
            "note": "COMET architecture on a local encoder with an UNTRAINED head: proves the loading "
                    "and scoring code path only. Its scores are NOT COMET scores and mean nothing.",
            "versions": _versions()}
    with open(os.path.join(out_dir, "regurg_bench_comet_card.json"), "w", encoding="utf-8") as fh:
        json.dump(card, fh, indent=2)
    return card


def main(argv: list[str]) -> int:
    if argv[:1] == ["build-test-checkpoint"]:
        import argparse

        p = argparse.ArgumentParser(prog="comet_worker.py build-test-checkpoint")
        p.add_argument("--encoder", required=True)
        p.add_argument("--out", required=True)
        p.add_argument("--kind", choices=sorted(_KINDS), default="regression")
        p.add_argument("--seed", type=int, default=0)
        a = p.parse_args(argv[1:])
        print(json.dumps(build_test_checkpoint(a.encoder, a.out, a.kind, a.seed)))
        return 0
    return serve()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
