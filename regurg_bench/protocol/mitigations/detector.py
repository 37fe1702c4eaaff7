"""M3: order generated pairs by a human-vs-generated detector's P(human) (the most human-like first)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from regurg_bench.protocol.mitigations import Mitigation, register


class DetectorMitigation(BaseModel):
    """M3: a human-vs-generated classifier trained on held-out pairs (sources not in the training
    sample), AUROC on a held-out part; generated training pairs are then ordered by P(human)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    enabled: bool = True
    heldout_pairs: int = Field(1000, ge=20)  # held-out sources (each gives one human and one generated target)
    test_fraction: float = Field(0.25, gt=0.0, lt=1.0)


@register
class Detector(Mitigation):
    key = "detector"
    label = "M3"
    order = 3
    settings_type = DetectorMitigation
    settings_default = DetectorMitigation()
    claims = {"m3_detector": "M3: ordering generated pairs by a detector's P(human) recovers part of the gap: R > 0"}

    def planned_conditions(self, cfg, generator):
        return [f"m3_detector_{generator}"]

    def planned_data(self, cfg):
        return ["heldout"] + [f"data:m3_{g}" for g in cfg.mitigated_generators()]

    def data_waves(self, cfg, out, derived, notes):
        from regurg_bench.corpora.lines import read_json_objects
        from regurg_bench.protocol.steps import HeldoutSplits

        main_ids = {r["id"] for r in read_json_objects(out / "splits" / "real.jsonl")}
        n = cfg.mitigations.detector.heldout_pairs
        # Held-out sources (not in the training sample) with human and generated targets. A different sampling
        # seed; the overlap with the training sample is dropped afterwards.
        hcfg = cfg.model_copy(update={"build": cfg.build.model_copy(update={
            "name": f"{cfg.build.name}-heldout", "seed": cfg.build.seed + 7919,
            "size": n + len(main_ids) // 5 + 50, "mixes": None, "ladder": None, "fractions_of_real": [],
            # only the generators M3 mitigates need targets for the held-out sources
            "generators": {g: cfg.build.generators[g] for g in cfg.mitigated_generators()},
            "recursive": None, "write_hf": False})})
        yield [HeldoutSplits("heldout", out / "heldout", cfg=hcfg)]
        yield [self._detector_step(cfg, out, main_ids, g) for g in cfg.mitigated_generators()]

    def _detector_step(self, cfg, out: Path, main_ids: set[str], g: str):
        """Char n-gram TF-IDF + logistic regression, human (1) vs generator ``g`` (0) targets of held-out sources;
        AUROC on a held-out part (split by source id); P(human) of each training pair."""
        from regurg_bench.corpora.lines import read_json_objects
        from regurg_bench.protocol.plan import SCHEMA_VERSION, file_sha, sha
        from regurg_bench.protocol.steps import cached_data_step, write_ids, write_jsonl

        d = cfg.mitigations.detector
        regurg = out / "splits" / f"regurg_{g}.jsonl"
        h_real, h_gen = out / "heldout" / "real.jsonl", out / "heldout" / f"regurg_{g}.jsonl"
        key = sha("m3", SCHEMA_VERSION, file_sha(regurg), file_sha(h_real), file_sha(h_gen), d.model_dump())[:16]

        def make(folder: Path) -> dict[str, Any]:
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.metrics import roc_auc_score
            from sklearn.pipeline import make_pipeline

            human = [r for r in read_json_objects(h_real) if r["id"] not in main_ids][: d.heldout_pairs]
            keep = {r["id"] for r in human}
            gen = {r["id"]: r for r in read_json_objects(h_gen) if r["id"] in keep}
            is_test = {i: int(sha("m3-test", i)[:8], 16) / 16**8 < d.test_fraction for i in keep}
            train_x, train_y, test_x, test_y = [], [], [], []
            for r in human:
                xs, ys = (test_x, test_y) if is_test[r["id"]] else (train_x, train_y)
                xs += [r["target"], gen[r["id"]]["target"]]
                ys += [1, 0]
            model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), min_df=2, sublinear_tf=True),
                                  LogisticRegression(C=4.0, max_iter=2000))
            model.fit(train_x, train_y)
            auroc = float(roc_auc_score(test_y, model.predict_proba(test_x)[:, 1]))
            rows = read_json_objects(regurg)
            p_human = model.predict_proba([r["target"] for r in rows])[:, 1].tolist()
            write_jsonl(folder / "p_human.jsonl", [{"id": r["id"], "p_human": p} for r, p in zip(rows, p_human, strict=False)])
            ranked = sorted(zip(p_human, (r["id"] for r in rows), strict=False), key=lambda t: (-t[0], t[1]))
            write_ids(folder / "curriculum.txt", [i for _, i in ranked])
            return {"classifier": "TfidfVectorizer(char_wb, 2-4, min_df=2, sublinear_tf) + LogisticRegression(C=4)",
                    "auroc": auroc, "heldout_sources": len(human), "train_texts": len(train_x),
                    "test_texts": len(test_x), "mean_p_human_training_pairs": sum(p_human) / len(p_human)}

        return cached_data_step(f"data:m3_{g}", out / "derived" / f"m3_{g}-{key}", make, "m3_detector",
                                describe=lambda r: f"[m3] detector human-vs-{g}: AUROC {r['auroc']:.3f} on "
                                                   f"{r['test_texts']} held-out texts")

    def students(self, cfg, splits, derived, seed, generator):
        from regurg_bench.protocol.plan import Student

        if f"m3_{generator}" not in derived:
            return []
        d = Path(derived[f"m3_{generator}"]["dir"])
        return [Student(f"m3_detector_{generator}", seed, splits / f"regurg_{generator}.jsonl", "m3_detector",
                        generator, curriculum=d / "curriculum.txt")]
