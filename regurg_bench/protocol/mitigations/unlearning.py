"""M4 (extension, *Unveiling the Flaws*): continue the REGURG student, unlearning its least human-like pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from regurg_bench.protocol.mitigations import Mitigation, register


class UnlearningMitigation(BaseModel):
    """M4: continue the REGURG student with the trainer's unlearning objective: forget set = the
    ``forget_fraction`` of its generated pairs the detector finds least human-like (lowest P(human);
    by quality score when the detector is off), replay = the rest of the regurg split."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    forget_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    steps: int = Field(50, gt=0)
    lr: float | None = Field(2e-4, gt=0)
    forget_weight: float = Field(0.2, gt=0)


@register
class Unlearning(Mitigation):
    key = "unlearning"
    label = "M4"
    order = 4
    continues_student = True  # the REGURG student
    settings_type = UnlearningMitigation
    settings_default = UnlearningMitigation()
    claims = {"m4_unlearn": "M4 (extension): unlearning the least human-like pairs recovers part of the gap: R > 0"}

    def enabled(self, cfg):
        m = cfg.mitigations
        return m.unlearning.enabled  # it needs a ranking (M3, else M1): data_steps notes when there is none

    def planned_conditions(self, cfg, generator):
        m = cfg.mitigations
        return [f"m4_unlearn_{generator}"] if m.detector.enabled or m.quality.enabled else []

    def planned_data(self, cfg):
        return [f"data:m4_{g}" for g in cfg.mitigated_generators() if self.planned_conditions(cfg, g)]

    def data_steps(self, cfg, out, derived, notes):
        from regurg_bench.protocol.plan import SCHEMA_VERSION, file_sha, sha
        from regurg_bench.protocol.steps import cached_data_step

        u = cfg.mitigations.unlearning
        steps = []
        for g in cfg.mitigated_generators():
            if f"m3_{g}" in derived:
                ranking, by = Path(derived[f"m3_{g}"]["dir"]) / "curriculum.txt", "detector P(human)"
            elif f"m1_{g}" in derived:
                ranking, by = Path(derived[f"m1_{g}"]["dir"]) / "curriculum.txt", "quality"
            else:
                notes.append("M4 skipped: it ranks pairs by the detector (M3) or quality (M1); both are off.")
                break
            regurg = out / "splits" / f"regurg_{g}.jsonl"
            key = sha("m4", SCHEMA_VERSION, file_sha(regurg), file_sha(ranking), u.forget_fraction)[:16]
            steps.append(cached_data_step(f"data:m4_{g}", out / "derived" / f"m4_{g}-{key}",
                                          _forget_and_replay(regurg, ranking, by, u.forget_fraction, g), "m4_unlearn"))
        return steps

    def students(self, cfg, splits, derived, seed, generator):
        from regurg_bench.protocol.plan import Student

        if f"m4_{generator}" not in derived:
            return []
        d = Path(derived[f"m4_{generator}"]["dir"])
        u = cfg.mitigations.unlearning
        ov: dict[str, Any] = {"max_steps": u.steps, "forget_weight": u.forget_weight, "epochs": 1.0}
        if u.lr is not None:
            ov["lr"] = u.lr
        return [Student(f"m4_unlearn_{generator}", seed, d / "replay.jsonl", "m4_unlearn", generator,
                        forget=d / "forget.jsonl", base_student=f"regurg_{generator}-s{seed}", train_overrides=ov)]


def _forget_and_replay(regurg: Path, ranking: Path, by: str, fraction: float, g: str):
    """forget = the least human-like ``fraction`` of the regurg pairs (the ranking is best first), replay = the rest."""
    from regurg_bench.corpora.lines import read_json_objects
    from regurg_bench.protocol.steps import write_jsonl

    def make(folder: Path) -> dict[str, Any]:
        order = [line.strip() for line in ranking.read_text(encoding="utf-8").splitlines() if line.strip()]
        n_forget = max(1, round(fraction * len(order)))
        forget_ids = set(order[-n_forget:])
        rows = read_json_objects(regurg)
        write_jsonl(folder / "forget.jsonl", [r for r in rows if r["id"] in forget_ids])
        write_jsonl(folder / "replay.jsonl", [r | {"condition": f"m4_unlearn_{g}"} for r in rows
                                              if r["id"] not in forget_ids])
        return {"forget_pairs": len(forget_ids), "replay_pairs": len(rows) - len(forget_ids), "ranked_by": by}

    return make
