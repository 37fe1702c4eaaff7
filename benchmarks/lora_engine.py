"""LoRA students: adapter on one engine (``eval.lora: adapter``) against the merged checkpoints (``merged``).

Reads finished protocol runs, nothing is recomputed. Give one run folder that holds both paths' evaluations
(run it twice: ``regurg-bench run --preset paper-smoke --out R`` then ``... --eval-lora merged --out R``; the
students are cached, each path's evaluations have their own keys), or two folders (``--merged R2``):

    python benchmarks/lora_engine.py runs/paper-smoke [--merged runs/paper-smoke-merged] [--json out.json]

Prints per student how many logged outputs differ between the two paths (raw strings of lm-eval's samples)
and the lm-eval scores of each, then the totals. The seconds and engine starts of each path are in the
runs' logs (``[eval] N vLLM engine start(s)``) and ``results.json`` ``timings_s.eval``.

``--own-engines`` also re-evaluates every adapter evaluation of the run with plain lm-eval on an engine of
its own (its recorded ``model_args``: ``pretrained=BASE,lora_local_path=ADAPTER,...``, one engine start per
student) and counts the students whose logged samples are byte for byte the recorded ones (the shared
engine's): the test's check (``tests/test_lora_engine.py``) at the run's scale.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def evaluations(run: Path) -> dict[tuple[str, str], dict]:
    """{(student, path): record} for the evaluations in ``run`` (path: ``lora`` of the settings)."""
    out = {}
    for marker in sorted((run / "evals").glob("*/done.json")):
        record = json.loads(marker.read_text(encoding="utf-8"))
        path = record.get("settings", {}).get("lora", "merged")
        out[(record["student"], path)] = record | {"dir": str(marker.parent)}
    return out


def outputs(record: dict) -> dict[str, list[str]]:
    """{task: outputs in doc order} from the evaluation's logged samples."""
    result = {}
    for task, rel in record["samples_files"].items():
        lines = (Path(record["dir"]) / rel).read_text(encoding="utf-8").splitlines()
        rows = sorted((json.loads(line) for line in lines), key=lambda r: r["doc_id"])
        result[task] = [r["filtered_resps"][0] for r in rows]
    return result


def compare(adapter: dict, merged: dict) -> dict:
    a, m = outputs(adapter), outputs(merged)
    row = {"outputs": 0, "differ": 0, "scores": {}}
    for task in a:
        row["outputs"] += len(a[task])
        row["differ"] += sum(x != y for x, y in zip(a[task], m[task], strict=True))
        ra, rm = adapter["reported"][task], merged["reported"][task]
        row["scores"][task] = {k.split(",")[0]: [round(ra[k], 3), round(rm[k], 3)]
                               for k in ra if k.split(",")[0] in ("bleu", "chrf", "ter") and "stderr" not in k}
    return row


def own_engines(have: dict[tuple[str, str], dict]) -> dict:
    """Each adapter evaluation again on an engine of its own: {student: byte-identical samples?}."""
    import tempfile

    from regurg_bench.evaluation.runner import EvalRequest, run_eval

    same = {}
    for (student, path), record in sorted(have.items()):
        if path != "adapter":
            continue
        settings = record["settings"]
        with tempfile.TemporaryDirectory() as tmp:
            run_eval(EvalRequest(model="vllm", model_args=record["config"]["model_args"], tasks=settings["tasks"],
                                 limit=settings["limit"], num_fewshot=settings["num_fewshot"],
                                 batch_size=_batch_size(record), output_path=tmp, log_samples=True,
                                 gen_kwargs=f"max_gen_toks={settings['max_gen_toks']}", metadata=settings["metadata"],
                                 bootstrap_iters=0))
            same[student] = all(
                next(Path(tmp).rglob(f"samples_{t}_*.jsonl")).read_bytes() == (Path(record["dir"]) / rel).read_bytes()
                for t, rel in record["samples_files"].items())
        print(f"[own engine] {student}: {'identical' if same[student] else 'DIFFERENT'}", flush=True)
    return same


def _batch_size(record: dict) -> int:
    """The batch size the run evaluated with (lm-eval's results file records it)."""
    results = json.loads((Path(record["dir"]) / record["results_file"]).read_text(encoding="utf-8"))
    return int(results["config"]["batch_size"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--merged", type=Path, help="the merged path's run folder (default: the same folder)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--own-engines", action="store_true",
                    help="re-evaluate each adapter evaluation on an engine of its own and compare bytes")
    args = ap.parse_args(argv)
    have = evaluations(args.run) | ({k: v for k, v in evaluations(args.merged).items() if k[1] == "merged"}
                                    if args.merged else {})
    students = sorted({s for s, _ in have})
    rows = {s: compare(have[(s, "adapter")], have[(s, "merged")]) for s in students
            if (s, "adapter") in have and (s, "merged") in have}
    if args.own_engines:
        same = own_engines(have)
        print(f"\nadapter on the shared engine == adapter on its own engine, byte for byte: "
              f"{sum(same.values())} of {len(same)} students")
        if args.json:
            args.json.with_suffix(".own-engines.json").write_text(json.dumps(same, indent=2), encoding="utf-8")
    if not rows:
        print("no student has both an adapter and a merged evaluation", file=sys.stderr)
        return 0 if args.own_engines else 1
    print("| student | outputs | differ (adapter vs merged) | scores adapter / merged |\n|---|---|---|---|")
    for s, r in rows.items():
        scores = "; ".join(f"{m} {a} / {b}" for t in r["scores"].values() for m, (a, b) in t.items())
        print(f"| {s} | {r['outputs']} | {r['differ']} | {scores} |")
    total = {"students": len(rows), "outputs": sum(r["outputs"] for r in rows.values()),
             "differ": sum(r["differ"] for r in rows.values()),
             "students_with_a_difference": sum(r["differ"] > 0 for r in rows.values())}
    print(f"\ntotal: {total['differ']} of {total['outputs']} outputs differ, in {total['students_with_a_difference']} "
          f"of {total['students']} students")
    if args.json:
        args.json.write_text(json.dumps({"students": rows, "total": total}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
