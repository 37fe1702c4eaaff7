"""M2: mix several generators at equal total size (each pair's target from one generator, by a keyed hash)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regurg_bench.protocol.mitigations import Mitigation, register


@register
class MultiGenerator(Mitigation):
    key = "multi_generator"
    label = "M2"
    order = 2
    settings_type = bool
    settings_default = True  # needs >= 2 generators; skipped with a note otherwise
    claims = {"m2_multigen": "M2: mixing several generators at equal total size recovers part of the gap: R > 0"}
    per_generator = False

    def planned_conditions(self, cfg, generator):
        return ["m2_multigen"] if len(cfg.build.generators) >= 2 else []

    def planned_data(self, cfg):
        return ["data:m2"] if len(cfg.build.generators) >= 2 else []

    def data_steps(self, cfg, out, derived, notes):
        from regurg_bench.corpora.lines import read_json_objects
        from regurg_bench.protocol.plan import SCHEMA_VERSION, file_sha, sha
        from regurg_bench.protocol.steps import cached_data_step, write_jsonl

        generators = list(cfg.build.generators)
        if len(generators) < 2:
            notes.append(f"M2 (multi-generator mix) skipped: it needs >= 2 generators, the config has {generators}.")
            return []
        files = [out / "splits" / f"regurg_{g}.jsonl" for g in generators]
        key = sha("m2", SCHEMA_VERSION, [file_sha(f) for f in files], cfg.build.seed)[:16]

        def make(folder: Path) -> dict[str, Any]:
            by_gen = {g: {r["id"]: r for r in read_json_objects(f)} for g, f in zip(generators, files, strict=False)}
            ids = [r["id"] for r in read_json_objects(files[0])]
            counts = dict.fromkeys(generators, 0)
            rows = []
            for i in ids:
                g = generators[int(sha("m2", cfg.build.seed, i)[:8], 16) % len(generators)]
                counts[g] += 1
                rows.append(by_gen[g][i] | {"condition": "m2_multigen"})
            write_jsonl(folder / "multigen.jsonl", rows)
            return {"pairs": len(rows), "per_generator": counts}

        return [cached_data_step("data:m2", out / "derived" / f"m2-{key}", make, "m2_multigen")]

    def students(self, cfg, splits, derived, seed, generator):
        from regurg_bench.protocol.plan import Student

        if "m2" not in derived:
            return []
        return [Student("m2_multigen", seed, Path(derived["m2"]["dir"]) / "multigen.jsonl", "m2_multigen")]
