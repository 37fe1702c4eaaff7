"""Neural metrics in reports: score lm-eval's logged samples after the fact (any regurg_mt task).

``lm_eval ... --log_samples`` (or ``regurg-bench eval --log_samples``) writes ``samples_<task>_*.jsonl``
with each document's source, reference and the model's output. :func:`neural_report` scores them with
the configured metrics, so COMET can be added to a report without re-running generation, and writes
strict JSON (``allow_nan=False``). COMET appears only when a checkpoint is given (argument or
``REGURG_BENCH_COMET_MODEL``/``..._QE_MODEL``); there is no COMET key otherwise.
"""

from __future__ import annotations

import json
from pathlib import Path

from regurg_bench.corpora.lines import read_json_objects
from regurg_bench.metrics.base import SegmentMetric


def report_metrics(comet_model: str | None = None, comet_qe_model: str | None = None,
                   muse: bool = True) -> list[SegmentMetric]:
    from regurg_bench.metrics.comet import configured_comet
    from regurg_bench.metrics.similarity import MuseCosine

    metrics: list[SegmentMetric] = []
    for m in (configured_comet(comet_model), configured_comet(comet_qe_model, qe=True)):
        if m is not None:
            metrics.append(m)
    if muse:
        metrics += [MuseCosine("source"), MuseCosine("reference")]
    return metrics


def _samples(folder: Path) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for path in sorted(folder.rglob("samples_*.jsonl")):
        task = path.name[len("samples_"):].rsplit("_", 1)[0]
        out[task] = read_json_objects(path)
    return out


def neural_report(output_dir: str | Path, metrics: list[SegmentMetric] | None = None,
                  write: bool = True) -> dict:
    """``{"tasks": {task: {metric: score}}, "metrics": {metric: description}}`` for the samples in
    ``output_dir``; also written to ``output_dir/neural_metrics.json`` when ``write``."""
    folder = Path(output_dir)
    metrics = report_metrics() if metrics is None else metrics
    samples = _samples(folder)
    if not samples:
        raise FileNotFoundError(f"no samples_*.jsonl under {folder} (run lm-eval with --log_samples)")
    report: dict = {"tasks": {}, "metrics": {m.name: m.describe() for m in metrics}}
    for task, rows in samples.items():
        src = [r["doc"]["source"] for r in rows]
        ref = [r["doc"]["target"] for r in rows]
        hyp = [r["filtered_resps"][0] for r in rows]
        report["tasks"][task] = {"n": len(rows)} | {
            m.name: m.corpus_score(hyp, sources=src, references=ref) for m in metrics}
    if write:
        from regurg_bench.atomic import atomic_write

        with atomic_write(folder / "neural_metrics.json") as fh:
            json.dump(report, fh, indent=2, allow_nan=False, ensure_ascii=False)
    return report
