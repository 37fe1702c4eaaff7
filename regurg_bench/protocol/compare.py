"""``regurg-bench compare RUN_A RUN_B``: two runs of one config, on one machine or two, side by side.

Either side is a run folder (its ``results.json`` and logged lm-eval samples), a ``results.json`` file, or
a leaderboard entry (``<board>/entries/<id>.json``, read with its evidence bundle when that is there:
the bundle holds the run's ``results.json`` and the logged outputs). What is compared:

- **scores**, per task x condition x metric: A, B, the difference B - A, that difference in units of
  the interval half-width ``sqrt(h_A^2 + h_B^2)`` (``h``: half the width of a score's 95 % interval;
  the root-sum-square is the half-width of the difference of two independent estimates, so a value
  above 1 means the two runs disagree by more than their own intervals allow; the runs share their
  test sentences, so it errs towards calling a difference small), and whether it lies within the
  seed-noise tolerance of :mod:`~regurg_bench.protocol.tolerance` (the one ``verify`` uses), from
  RUN_A's seed spread: A is the reference (a published entry, the first machine), as the recorded run
  is for ``verify``, so a broken B cannot widen its own tolerance;
- **identical outputs**: per condition and seed, the share of test documents whose hypothesis
  (``filtered_resps[0]``) is byte for byte the same, when both sides have their outputs;
- **verdicts**, per claim x metric: agreement of the verdict words (holds / contradicted /
  inconclusive / ...), and each side's robustness (``robust``, ``fragile``, ``inconclusive``; results
  scored before robustness was recorded count as ``fragile``);
- **where the runs first diverged**, from the recorded fingerprints (:mod:`~regurg_bench.protocol.fingerprints`):
  base model, then generator checkpoints and generated splits, then student weights, then outputs.

Exit status: 1 when a verdict marked robust in either run disagrees with the other run's verdict
(that is what "robust" promises), 0 otherwise, 2 on bad input (named before any work). Two different
config hashes are refused (exit 2): the runs would differ by design, and verdict agreement would say
nothing about machines; ``--allow-config-change`` compares them anyway, with a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regurg_bench.results import RESULTS_SCHEMA, RunClaim, RunData, RunResults, Score

COMPARE_SCHEMA = "regurg-bench/compare/v1"
#: results scored before robustness was recorded: a verdict nobody checked for robustness is fragile
MISSING_ROBUSTNESS = "fragile"
STAGES = ("base model", "generators and generated splits", "student weights", "outputs")


class CompareError(ValueError):
    """Input that cannot be compared (a missing file, a bad field, other configs); the message names it."""


@dataclass
class Side:
    """One side of a comparison: its results (the typed ``results.json``) and where its outputs are read from."""

    label: str
    kind: str  # "run" or "entry"
    results: RunResults
    files: Any | None  # a RunFiles the logged samples are read from; None: no outputs here
    note: str = ""  # what is not available, and why

    @property
    def claims(self) -> list[RunClaim] | None:
        """The claims the side records; None when it records none (an entry read without its evidence)."""
        return self.results.claims if "claims" in self.results.model_fields_set else None

    def describe(self) -> dict[str, Any]:
        return {"path": self.label, "kind": self.kind, "config_hash": self.results.config_hash,
                "outputs": self.files is not None, "claims": self.claims is not None,
                "fingerprints": self.results.fingerprints is not None, "note": self.note}


# ------------------------------------------------------------------------------ reading the two sides
def load_side(path: str | Path) -> Side:
    """A run folder, a ``results.json`` file or a leaderboard entry file, checked (bad input raises
    :class:`CompareError` naming the file and field)."""
    from regurg_bench.leaderboard import schema
    from regurg_bench.leaderboard.safe_io import read_json

    path = Path(path)
    if path.is_dir():
        if not (path / "results.json").is_file():
            raise CompareError(f"{path}: no results.json (is this a finished run folder?)")
        return _run_side(path)
    if not path.is_file():
        raise CompareError(f"{path}: no such run folder, results.json or leaderboard entry file")
    try:
        data = read_json(path, schema.MAX_RESULTS_BYTES, str(path))
    except schema.SubmissionError as err:
        raise CompareError(str(err)) from None
    kind = data.get("schema") if isinstance(data, dict) else None
    if kind == schema.RESULTS_SCHEMA:
        return _run_side(path.parent, path.name)
    if kind in schema.ENTRY_SCHEMAS:
        return _entry_side(path, data)
    raise CompareError(f"{path}: field 'schema' is {kind!r}: neither a run's results.json ({schema.RESULTS_SCHEMA}) "
                       f"nor a leaderboard entry ({schema.ENTRY_SCHEMA})")


def _run_side(folder: Path, name: str = "results.json") -> Side:
    from regurg_bench.leaderboard import schema
    from regurg_bench.leaderboard.evidence import FolderFiles
    from regurg_bench.leaderboard.safe_io import read_bounded
    from regurg_bench.leaderboard.submit import parse_results

    label = str(folder / name)
    try:  # the typed model every reader of results.json uses: errors name the field
        results = parse_results(read_bounded(folder / name, schema.MAX_RESULTS_BYTES, label), label)
    except schema.SubmissionError as err:
        raise CompareError(str(err)) from None
    return Side(str(folder), "run", results, FolderFiles(folder))


def _entry_side(path: Path, data: dict[str, Any]) -> Side:
    from regurg_bench.leaderboard import evidence
    from regurg_bench.leaderboard.schema import LeaderboardEntry, SubmissionError
    from regurg_bench.leaderboard.submit import parse_results
    from regurg_bench.results import validated

    entry = validated(LeaderboardEntry, data, str(path), CompareError)
    board = path.parent.parent
    try:
        bundle = evidence.evidence_path(board, entry.evidence.sha256)
    except SubmissionError as err:
        raise CompareError(f"{path}: {err}") from None
    if not bundle.is_file():
        note = (f"its evidence {bundle} is not here: no results.json beside the entry (no verdicts, no split "
                "fingerprints) and no outputs")
        return Side(str(path), "entry", _results_from_entry(entry), None, note)
    try:
        files = evidence.load(board, entry.evidence.sha256, str(path))
        text = files.get("results.json")
        if text is None:
            raise SubmissionError(f"{bundle}: no results.json in the evidence")
        results = parse_results(text, f"{bundle} (results.json)")
    except SubmissionError as err:
        raise CompareError(str(err)) from None
    if results.config_hash != entry.config_hash:
        raise CompareError(f"{path}: field 'config_hash' is {entry.config_hash}, but the results.json in its evidence "
                           f"records {results.config_hash}")
    if results.fingerprints is None and entry.fingerprints is not None:
        results = results.model_copy(update={"fingerprints": entry.fingerprints})
    return Side(str(path), "entry", results, evidence.BundleFiles(files, entry.evidence.sha256))


def _results_from_entry(entry: Any) -> RunResults:
    """The parts of a results.json an entry carries itself (no claims, no students' outputs): the fields it does
    not carry are not set (``claims`` not among ``model_fields_set``: the side records no claims)."""
    return RunResults.model_construct(
        schema_id=RESULTS_SCHEMA, config_hash=entry.config_hash, tasks=list(entry.tasks), scores=entry.scores,
        conditions=entry.conditions, students={}, fingerprints=entry.fingerprints,
        data=RunData.model_construct(build_config_hash=entry.build_config_hash),
        config={"scoring": {"metrics": list(entry.metrics)}})


# ------------------------------------------------------------------------------ the comparisons
def _order(a: RunResults, b: RunResults, task: str) -> list[str]:
    """Conditions in A's scoring order, then those only B has."""
    out: list[str] = []
    for res in (a, b):
        scored = res.scores.get(task, {})
        for cond in (res.condition_order or list(scored)):
            if cond not in out and cond in scored:
                out.append(cond)
    return out


def _half_width(score: Score) -> float:
    return (score.ci_high - score.ci_low) / 2.0


def _reference_spread(a: Side, b: Side, task: str, metric: str) -> Any:
    """The seed spread the tolerance comes from: RUN_A's (the reference, as the recorded run is ``verify``'s),
    so that a broken RUN_B cannot widen its own tolerance; RUN_B's where RUN_A has none (one seed)."""
    from regurg_bench.protocol.tolerance import run_seed_spread

    spread = run_seed_spread([a.results], task, metric)
    return spread if spread.sd is not None else run_seed_spread([b.results], task, metric)


def compare_scores(a: Side, b: Side, tasks: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """One row per task x condition x metric (see the module docstring for every column)."""
    from regurg_bench.protocol.tolerance import tolerance, within

    pairs = []
    for task in tasks:
        sa, sb = a.results.scores.get(task, {}), b.results.scores.get(task, {})
        for cond in _order(a.results, b.results, task):
            for m in metrics:
                pairs.append((task, cond, m, sa.get(cond, {}).get(m), sb.get(cond, {}).get(m)))
    comparisons = sum(1 for *_, x, y in pairs if x is not None and y is not None)
    spreads = {(t, m): _reference_spread(a, b, t, m) for t in tasks for m in metrics}
    rows = []
    for task, cond, m, x, y in pairs:
        row: dict[str, Any] = {"task": task, "condition": cond, "metric": m,
                               "a": x.score if x else None, "b": y.score if y else None}
        if x is None or y is None:
            rows.append(row | {"missing_in": "a" if x is None else "b"})
            continue
        diff = y.score - x.score
        hw = math.hypot(_half_width(x), _half_width(y))
        tol = tolerance(spreads[(task, m)], comparisons, len(x.per_seed), len(y.per_seed))
        rows.append(row | {"difference": round(diff, 6), "half_width": round(hw, 6),
                           "difference_in_half_widths": round(diff / hw, 4) if hw > 0 else (0.0 if diff == 0 else None),
                           "tolerance": tol.to_dict(), "within_noise": within(diff, tol)})
    return rows


def _read_outputs(side: Side, name: str, task: str) -> tuple[dict[int, str] | None, str]:
    """{doc_id: hypothesis} of one student's logged samples, or None and why not."""
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.leaderboard.verify import read_samples

    student = side.results.students.get(name)
    rel = student.samples.get(task) if student else None
    if side.files is None or rel is None:
        return None, f"{side.label}: no logged samples for {name} ({task})"
    try:
        ids, hyps, _ = read_samples(side.files, rel, f"{side.label}: {name} ({task})")
    except SubmissionError as err:
        return None, str(err)
    return dict(zip(ids, hyps, strict=True)), ""


def identical_outputs(a: Side, b: Side, tasks: list[str]) -> tuple[dict[str, Any] | None, list[str]]:
    """task -> condition -> {identical, total, share, per_seed: {seed: share}} over the students both sides
    logged, and what could not be compared. None when a side has no outputs at all."""
    missing = [s for s in (a, b) if s.files is None]
    if missing:
        return None, [f"identical outputs not compared: {s.label} has no logged outputs ({s.note or 'none'})"
                      for s in missing]
    notes: list[str] = []
    out: dict[str, Any] = {}
    students_b = b.results.students
    for task in tasks:
        per_cond: dict[str, Any] = {}
        for name, info in a.results.students.items():
            if name not in students_b:
                notes.append(f"{name}: only in {a.label}")
                continue
            ha, why_a = _read_outputs(a, name, task)
            hb, why_b = _read_outputs(b, name, task)
            if ha is None or hb is None:
                notes.append(f"outputs of {name} ({task}) not compared: {why_a or why_b}")
                continue
            docs = set(ha) | set(hb)
            same = sum(1 for d in docs if d in ha and d in hb and ha[d] == hb[d])
            c = per_cond.setdefault(info.condition, {"identical": 0, "total": 0, "per_seed": {}})
            c["identical"] += same
            c["total"] += len(docs)
            c["per_seed"][str(info.seed)] = round(same / len(docs), 6) if docs else 1.0
        for c in per_cond.values():
            c["share"] = round(c["identical"] / c["total"], 6) if c["total"] else 1.0
        out[task] = per_cond
    notes += [f"{name}: only in {b.label}" for name in students_b if name not in a.results.students]
    return out, notes


def verdict_word(verdict: str | None) -> str:
    """The verdict's class: its first word (holds, contradicted, inconclusive, undetermined, undefined)."""
    return verdict.split()[0].strip("(:,").lower() if verdict else "missing"


def compare_verdicts(a: Side, b: Side) -> tuple[list[dict[str, Any]] | None, str]:
    """One row per claim x metric of either run: both verdicts, both robustness marks, agreement, and
    whether a robust verdict is contradicted by the other run (``breaking``)."""
    if a.claims is None or b.claims is None:
        side = a if a.claims is None else b
        return None, f"verdicts not compared: {side.label} records no claims ({side.note or 'no results.json'})"

    def keyed(claims: list[RunClaim]) -> dict[tuple, dict[str, Any]]:
        # descriptive (per_stat) claims have no interval and no verdict to keep
        return {(c.claim, c.task, c.condition): c.per_metric for c in claims if c.per_metric}

    ca, cb = keyed(a.claims), keyed(b.claims)
    rows = []
    for key in list(ca) + [k for k in cb if k not in ca]:
        pa, pb = ca.get(key, {}), cb.get(key, {})
        for m in list(pa) + [x for x in pb if x not in pa]:
            va, vb = (pa[m].verdict if m in pa else None), (pb[m].verdict if m in pb else None)
            ra = (pa[m].robustness or MISSING_ROBUSTNESS) if va else None
            rb = (pb[m].robustness or MISSING_ROBUSTNESS) if vb else None
            agree = verdict_word(va) == verdict_word(vb)
            robust = "robust" in (ra, rb)
            rows.append({"claim": key[0], "task": key[1], "condition": key[2], "metric": m, "a": va, "b": vb,
                         "robustness_a": ra, "robustness_b": rb, "agree": agree, "robust": robust,
                         "breaking": robust and not agree})
    return rows, ""


def _differing(fa: dict[str, Any], fb: dict[str, Any], prefix: str = "") -> tuple[list[str], int]:
    names = list(fa) + [k for k in fb if k not in fa]
    return [prefix + n for n in names if fa.get(n) != fb.get(n)], len(names)


def divergence(a: Side, b: Side, outputs: dict[str, Any] | None, student_shares: dict[str, float]) -> dict[str, Any]:
    """Each stage (base model, generators and generated splits, student weights, outputs): identical,
    differ (naming what) or not recorded; and the first stage that differs."""
    fa, fb = a.results.fingerprints, b.results.fingerprints
    stages = []

    def stage(name: str, differing: list[str] | None, compared: int, detail: str = "") -> None:
        status = "not recorded" if differing is None else ("differ" if differing else "identical")
        stages.append({"stage": name, "status": status, "differing": differing or [], "compared": compared,
                       "detail": detail})

    if fa is None or fb is None:
        why = " and ".join(s.label for s, f in ((a, fa), (b, fb)) if f is None) + " recorded no fingerprints"
        stage(STAGES[0], None, 0, why)
    else:
        base = fa.base_model, fb.base_model
        stage(STAGES[0], [] if base[0] == base[1] else ["base model"], 1,
              "no shared base checkpoint (scratch students)" if base == (None, None) else "")
    splits_a, splits_b = a.results.data.split_fingerprints, b.results.data.split_fingerprints
    gens = _differing(fa.generators, fb.generators, "generator ") if fa and fb else None
    splits = _differing(splits_a, splits_b, "split ") if splits_a and splits_b else None
    if gens is None and splits is None:
        stage(STAGES[1], None, 0, "no generator or split fingerprints on both sides")
    else:
        stage(STAGES[1], (gens or ([], 0))[0] + (splits or ([], 0))[0], (gens or ([], 0))[1] + (splits or ([], 0))[1])
    if fa is None or fb is None:
        stage(STAGES[2], None, 0)
    else:
        stage(STAGES[2], *_differing(fa.students, fb.students))
    if outputs is None:
        stage(STAGES[3], None, 0, "a side has no logged outputs")
    else:
        stage(STAGES[3], [n for n, share in student_shares.items() if share < 1.0], len(student_shares))
    first = next((s["stage"] for s in stages if s["status"] == "differ"), None)
    unknown_before = []
    for s in stages:
        if s["stage"] == first:
            break
        if s["status"] == "not recorded":
            unknown_before.append(s["stage"])
    return {"stages": stages, "first": first, "not_recorded_before_first": unknown_before}


def compare_runs(a: Side, b: Side, *, allow_config_change: bool = False) -> dict[str, Any]:
    """The whole comparison as a JSON-able dict (what ``--json`` writes); ``exit_code`` is the CLI's status."""
    from regurg_bench.protocol.tolerance import DEFINITION

    warnings = []
    same_config = a.results.config_hash == b.results.config_hash
    if not same_config:
        problem = f"field 'config_hash' differs ({a.label}: {a.results.config_hash}, {b.label}: {b.results.config_hash})"
        if not allow_config_change:
            raise CompareError(problem + ": compare takes two runs of one config; pass --allow-config-change to "
                               "compare them anyway")
        warnings.append(f"WARNING: {problem}: the runs differ by design, so their differences and verdict "
                        "disagreements say nothing about machines")
    tasks = [t for t in a.results.tasks if t in b.results.tasks]
    if not tasks:
        raise CompareError(f"no task in common: {a.label} has {a.results.tasks}, {b.label} has {b.results.tasks}")
    metrics_b = b.results.metrics()
    metrics = [m for m in a.results.metrics() if m in metrics_b]
    scores = compare_scores(a, b, tasks, metrics)
    outputs, notes = identical_outputs(a, b, tasks)
    shares = _student_shares(a, b, outputs) if outputs is not None else {}
    verdicts, note = compare_verdicts(a, b)
    if note:
        notes.append(note)
    breaking = [v for v in verdicts or [] if v["breaking"]]
    with_both = [r for r in scores if "difference" in r]
    return {
        "schema": COMPARE_SCHEMA,
        "a": a.describe(), "b": b.describe(),
        "same_config": same_config,
        "tasks": tasks, "metrics": metrics,
        "tolerance": DEFINITION,
        "half_width": "sqrt(h_a^2 + h_b^2), h = half the width of each score's interval",
        "scores": scores,
        "identical_outputs": outputs,
        "verdicts": verdicts,
        "divergence": divergence(a, b, outputs, shares),
        "summary": {"scores": len(with_both), "scores_within_noise": sum(r["within_noise"] is True for r in with_both),
                    "scores_without_tolerance": sum(r["within_noise"] is None for r in with_both),
                    "verdicts": len(verdicts or []), "verdicts_agree": sum(v["agree"] for v in verdicts or []),
                    "robust_disagreements": len(breaking)},
        "warnings": warnings,
        "notes": notes,
        "exit_code": 1 if breaking else 0,
    }


def _student_shares(a: Side, b: Side, outputs: dict[str, Any]) -> dict[str, float]:
    """Identical-output share per student (over tasks), in A's student order."""
    out = {}
    for name, info in a.results.students.items():
        per = [outputs[t].get(info.condition, {}).get("per_seed", {}).get(str(info.seed)) for t in outputs]
        per = [x for x in per if x is not None]
        if per:
            out[name] = min(per)
    return out


# ------------------------------------------------------------------------------ the terminal table
def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


_SHORT = {"holds": "holds", "contradicted": "contra", "inconclusive": "incon", "undetermined": "undet",
          "undefined": "undef", "missing": "-"}


def _verdict_cell(v: dict[str, Any]) -> str:
    """``= holds *`` (agree; * robust on both sides, *A or *B on one), ``holds *A ≠ incon``, ``✗`` when breaking."""
    def word(verdict: str | None) -> str:
        return _SHORT.get(verdict_word(verdict), verdict_word(verdict))

    ra, rb = v["robustness_a"] == "robust", v["robustness_b"] == "robust"
    if v["agree"]:
        return f"= {word(v['a'])}" + (" *" if ra and rb else " *A" if ra else " *B" if rb else "")
    return (("✗ " if v["breaking"] else "") + word(v["a"]) + ("*" if ra else "") + " ≠ " + word(v["b"])
            + ("*" if rb else ""))


def render(result: dict[str, Any], console: Any = None) -> None:
    """The compact terminal view: scores per condition (A -> B and the difference in interval half-widths,
    ! when outside the tolerance), identical outputs, verdicts, the first divergence, and the exit status."""
    from rich.console import Console

    from regurg_bench.console import plain

    console = console or Console()
    for w in result["warnings"]:
        console.print(plain(w), style="bold red")
    for side in ("a", "b"):
        d = result[side]
        console.print(plain(f"{side.upper()}: {d['path']} ({d['kind']}, {str(d['config_hash'])[:19]}…)"
                            + ("" if d["outputs"] else ", no outputs")))
    console.print(_score_table(result))
    if result["verdicts"] is not None:
        console.print(_verdict_table(result))
    for line in _divergence_lines(result["divergence"]):
        console.print(plain(line))
    for n in result["notes"][:8]:
        console.print(plain(f"note: {n}"), style="dim")
    if len(result["notes"]) > 8:
        console.print(plain(f"note: ... {len(result['notes']) - 8} more in --json"), style="dim")
    s = result["summary"]
    console.print(plain(f"{s['scores_within_noise']}/{s['scores']} scores within the seed-noise tolerance"
                        + (f" ({s['scores_without_tolerance']} without a tolerance: no seed spread)"
                           if s["scores_without_tolerance"] else "")
                        + f"; {s['verdicts_agree']}/{s['verdicts']} verdicts agree; {s['robust_disagreements']} "
                        f"robust verdict(s) contradicted -> exit {result['exit_code']}"),
                  style="bold red" if result["exit_code"] else None)


def _score_cell(r: dict[str, Any]) -> str:
    """``A→B +d`` (d: B−A in interval half-widths, ! outside the tolerance), or which side lacks the score."""
    if "difference" not in r:
        return f"only in {'B' if r['missing_in'] == 'a' else 'A'}"
    hw = r["difference_in_half_widths"]
    return (f"{_fmt(r['a'])}→{_fmt(r['b'])} {'n/a' if hw is None else f'{hw:+.1f}'}"
            + ("!" if r["within_noise"] is False else ""))


def _score_table(result: dict[str, Any]) -> Any:
    """One row per (task,) condition: each metric's score cell and the share of identical outputs."""
    from rich.table import Table

    from regurg_bench.console import plain
    from regurg_bench.metric_table import metric_label

    several = len(result["tasks"]) > 1
    outputs = result["identical_outputs"] or {}
    table = Table(title="scores A→B, then B−A in interval half-widths (! outside the seed-noise tolerance)",
                  title_justify="left")
    if several:
        table.add_column("task", overflow="fold")
    table.add_column("condition", overflow="fold")
    for m in result["metrics"]:
        table.add_column(metric_label(m), justify="right", no_wrap=True)
    table.add_column("same out", justify="right", no_wrap=True)
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for r in result["scores"]:
        cells.setdefault((r["task"], r["condition"]), {})[r["metric"]] = _score_cell(r)
    for (task, cond), per in cells.items():
        share = outputs.get(task, {}).get(cond)
        row = ([plain(task)] if several else []) + [plain(cond)] + [plain(per.get(m, "")) for m in result["metrics"]]
        row.append(plain("n/a" if share is None else f"{share['share']:.0%}"))
        table.add_row(*row)
    return table


def _verdict_table(result: dict[str, Any]) -> Any:
    """One row per claim and condition: each metric's verdicts A vs B."""
    from rich.table import Table

    from regurg_bench.console import plain
    from regurg_bench.metric_table import metric_label

    several = len(result["tasks"]) > 1
    vt = Table(title="verdicts A vs B (* robust; ✗ a robust verdict the other run contradicts)",
               title_justify="left")
    vt.add_column("claim", overflow="fold")
    vt.add_column("condition", overflow="fold")
    for m in result["metrics"]:
        vt.add_column(metric_label(m), no_wrap=True)
    rows: dict[tuple, dict[str, str]] = {}
    for v in result["verdicts"]:
        rows.setdefault((v["claim"], v["task"], v["condition"]), {})[v["metric"]] = _verdict_cell(v)
    for (claim, task, cond), per in rows.items():
        vt.add_row(plain(claim), plain(f"{cond}" + (f" ({task})" if several else "")),
                   *[plain(per.get(m, "")) for m in result["metrics"]])
    return vt


def _divergence_lines(div: dict[str, Any]) -> list[str]:
    """Each fingerprinted stage's agreement, then the first stage where the runs diverged."""
    parts = []
    for s in div["stages"]:
        text = s["status"] if s["status"] != "differ" else f"{len(s['differing'])}/{s['compared']} differ"
        parts.append(f"{s['stage']}: {text}" + (" (none: scratch students)" if s["detail"].startswith("no shared")
                                                 else ""))
    lines = ["fingerprints: " + "; ".join(parts)]
    if not div["first"]:
        return lines + ["first divergence: none recorded"]
    stage = next(s for s in div["stages"] if s["stage"] == div["first"])
    shown = ", ".join(stage["differing"][:6]) + (" ..." if len(stage["differing"]) > 6 else "")
    return lines + [f"first divergence: {div['first']} ({shown})"
                    + (f"; not recorded before it: {', '.join(div['not_recorded_before_first'])}"
                       if div["not_recorded_before_first"] else "")]
