"""M1: order generated pairs by reference-free quality, or keep only the best ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from regurg_bench.protocol.mitigations import Mitigation, register


class QualityMitigation(BaseModel):
    """M1: reference-free per-instance quality of each generated pair (COMET-QE when configured, else
    mUSE source-hypothesis cosine) -> (a) curriculum high -> low over the whole regurg split,
    (b) the top ``top_fraction`` of pairs only."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    top_fraction: float = Field(0.5, gt=0.0, le=1.0)
    qe_model: str | None = None


@register
class Quality(Mitigation):
    key = "quality"
    label = "M1"
    order = 1
    settings_type = QualityMitigation
    settings_default = QualityMitigation()
    claims = {
        "m1_order": "M1: ordering generated pairs by reference-free quality (high -> low) recovers part of the gap: R > 0",
        "m1_topk": "M1: keeping only the top-quality generated pairs recovers part of the gap: R > 0",
    }

    def planned_conditions(self, cfg, generator):
        return [f"m1_order_{generator}", f"m1_topk_{generator}"]

    def planned_data(self, cfg):
        return [f"data:m1_{g}" for g in cfg.mitigated_generators()]

    def data_steps(self, cfg, out, derived, notes):
        from regurg_bench.corpora.lines import read_json_objects
        from regurg_bench.protocol.plan import SCHEMA_VERSION, file_sha, sha
        from regurg_bench.protocol.steps import cached_data_step, write_ids, write_jsonl

        q = cfg.mitigations.quality
        steps = []
        for g in cfg.mitigated_generators():
            regurg = out / "splits" / f"regurg_{g}.jsonl"
            key = sha("m1", SCHEMA_VERSION, file_sha(regurg), q.model_dump())[:16]

            def make(folder: Path, regurg: Path = regurg, g: str = g) -> dict[str, Any]:
                from regurg_bench.metrics.quality import quality_signal

                rows = read_json_objects(regurg)
                signal = quality_signal([r["source"] for r in rows], [r["target"] for r in rows], q.qe_model)
                write_jsonl(folder / "quality.jsonl",
                            [{"id": r["id"], "quality": s} for r, s in zip(rows, signal.scores, strict=False)])
                ranked = sorted(zip(signal.scores, (r["id"] for r in rows), strict=False), key=lambda t: (-t[0], t[1]))
                write_ids(folder / "curriculum.txt", [i for _, i in ranked])
                keep = {i for _, i in ranked[: max(1, round(q.top_fraction * len(rows)))]}
                write_jsonl(folder / "topk.jsonl", [r | {"condition": f"m1_topk_{g}"} for r in rows if r["id"] in keep])
                return {"metric": signal.metric, "signature": signal.signature, "test_only": signal.test_only,
                        "pairs": len(rows), "top_k": len(keep), "top_fraction": q.top_fraction,
                        "mean_quality": sum(signal.scores) / len(signal.scores)}

            steps.append(cached_data_step(f"data:m1_{g}", out / "derived" / f"m1_{g}-{key}", make, "m1_quality"))
        return steps

    def students(self, cfg, splits, derived, seed, generator):
        from regurg_bench.protocol.plan import Student

        if f"m1_{generator}" not in derived:
            return []
        d = Path(derived[f"m1_{generator}"]["dir"])
        return [Student(f"m1_order_{generator}", seed, splits / f"regurg_{generator}.jsonl", "m1_order", generator,
                        curriculum=d / "curriculum.txt"),
                Student(f"m1_topk_{generator}", seed, d / "topk.jsonl", "m1_topk", generator)]
