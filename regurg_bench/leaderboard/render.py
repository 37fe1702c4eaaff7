"""Render a leaderboard: ``README.md`` (Markdown tables), ``index.html`` (one static, self-contained
page: inline CSS, a small inline script that sorts tables, the plot embedded as a data URI; no
network resources) and ``scores.png``.

Deterministic: entries are ordered by (model, entry id), columns by name, numbers formatted with
fixed precision, and the PNG carries no software/date metadata, so the same entries give
byte-identical files whatever order they were submitted in.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

from regurg_bench.leaderboard.curve import curve_section
from regurg_bench.leaderboard.safe_io import write_file
from regurg_bench.leaderboard.schema import Effect, LeaderboardEntry
from regurg_bench.metric_table import METRIC_LABEL, metric_title

PLOT_DPI = 100
MISSING = "–"
UNVERIFIED = "unverified"


@dataclass(frozen=True)
class Cell:
    text: str  # what is shown (also the Markdown cell)
    sort: str  # data-sort-value: the raw number (repr, exact) or text; "" = no value (sorts last)
    note: str = ""  # a status shown after the number (not significant, no gap, ...)


@dataclass(frozen=True)
class Column:
    key: str  # stable id, e.g. "real", "D:regurg_apertium", "R:m1_topk_apertium:regurg_apertium"
    label: str
    numeric: bool
    title: str = ""


def _num(x: float | None) -> str:
    return "" if x is None else repr(float(x))


def _fmt(x: float | None, digits: int, unbounded: str) -> str:
    # effects.Effect.to_dict writes an infinite interval end as null; -0.0 is shown as 0.
    return unbounded if x is None else f"{x + 0.0:.{digits}f}"


def score_cell(entry: LeaderboardEntry, task: str, cond: str, metric: str) -> Cell:
    s = entry.scores.get(task, {}).get(cond, {}).get(metric)
    if s is None:
        return Cell(MISSING, "")
    return Cell(f"{_fmt(s.score, 2, '')} [{_fmt(s.ci_low, 2, '')}, {_fmt(s.ci_high, 2, '')}]", _num(s.score))


def effect_cell(effect: Effect | None) -> Cell:
    if effect is None:
        return Cell(MISSING, "")
    status = effect.status.replace("_", " ")
    if effect.estimate is None:
        return Cell(f"n/a ({status})", "", "")
    note = "" if effect.status == "ok" else status
    text = f"{_fmt(effect.estimate, 3, '')} [{_fmt(effect.ci_low, 3, '-inf')}, {_fmt(effect.ci_high, 3, 'inf')}]"
    return Cell(text, _num(effect.estimate), note)


def columns(entries: list[LeaderboardEntry], task: str) -> list[Column]:
    """The table's columns for ``task``: the union over entries, in a fixed order."""
    regurg = sorted({c for e in entries for c, info in e.conditions.items()
                     if info.kind == "regurg" and c in e.scores.get(task, {})})
    rec = sorted({(c, b) for e in entries for c, bases in e.recovery.get(task, {}).items() for b in bases})
    cols = [Column("model", "model", False), Column("flags", "flags", False,
                                                     "contaminated, near-copy, above-real, outlier-seed: the "
                                                     "plausibility rules that flag it (leaderboards/README.md)"),
            Column("verified", "re-run", False, "verified: K students re-trained from the entry alone reproduced "
                                                "(exactly or within noise), by the board's CI or a user; failed: a "
                                                "re-run did not; unverified: not re-run yet"),
            Column("copied", "copied refs", True, "largest share of a condition's hypotheses identical to their "
                                                  "reference (test-set contamination signal)"),
            Column("base_model", "base model", False),
            Column("seeds", "seeds", False), Column("n", "test sentences", True, "test sentences scored"),
            Column("real", "REAL", True, "score of the student trained on real (human) targets, 95% CI")]
    cols += [Column(c, f"REGURG {c.removeprefix('regurg_')}", True,
                    f"score of the student trained on {c} targets") for c in regurg]
    cols += [Column(f"D:{c}", f"D {c.removeprefix('regurg_')}", True,
                    f"degradation D of {c} vs real (> 0: real data is better)") for c in regurg]
    cols += [Column(f"R:{c}:{b}", f"R {c} vs {b.removeprefix('regurg_')}", True,
                    f"recovery R of {c} relative to the {b} - real gap") for c, b in rec]
    return cols


def row(entry: LeaderboardEntry, task: str, metric: str, cols: list[Column], verified: dict[str, str] | None = None
        ) -> list[Cell]:
    """The entry's cells under ``cols``: text columns (shown as they sort), the largest copy share, D, R and scores."""
    n = entry.n_test_sentences.get(task)
    text = {"model": entry.model, "verified": (verified or {}).get(entry.entry_id, UNVERIFIED),
            "flags": ",".join(entry.flags), "base_model": entry.base_model, "seeds": ",".join(map(str, entry.seeds)),
            "n": None if n is None else str(n)}
    top = max((s.copied_reference for s in entry.plausibility.get(task, {}).values()), default=None)

    def cell(key: str) -> Cell:
        if key in text:
            return Cell(MISSING, "") if text[key] is None else Cell(text[key], text[key])
        if key == "copied":
            return Cell(MISSING, "") if top is None else Cell(f"{100 * top:.1f}%", _num(top))
        if key.startswith("D:"):
            return effect_cell(entry.degradation.get(task, {}).get(key[2:], {}).get(metric))
        if key.startswith("R:"):
            _, cond, base = key.split(":")
            return effect_cell(entry.recovery.get(task, {}).get(cond, {}).get(base, {}).get(metric))
        return score_cell(entry, task, key, metric)

    return [cell(col.key) for col in cols]


def verification_labels(folder: Path, entries: list[LeaderboardEntry]) -> dict[str, str]:
    """{entry id: "verified (board-ci)" | "failed (user)" | ... | "unverified"}: the board CI's latest record
    decides; without one, the latest record of anyone (:mod:`.verifications`)."""
    from regurg_bench.leaderboard import verifications

    labels = {}
    for e in entries:
        found = verifications.read(folder, e.entry_id)
        state, last = verifications.status(found, verifications.BOARD_CI)
        if last is None:
            state, last = verifications.status(found)
        labels[e.entry_id] = UNVERIFIED if last is None else f"{state} ({last.by}, {last.rerun} students)"
    return labels


def _suspect(e: LeaderboardEntry, verified: dict[str, str] | None) -> bool:
    return bool(e.flags) or (verified or {}).get(e.entry_id, "").startswith("failed")


def ordered(entries: list[LeaderboardEntry], verified: dict[str, str] | None = None) -> list[LeaderboardEntry]:
    """Verified entries first, then unverified ones, then flagged entries and entries whose re-run failed: a
    flagged entry never takes first place."""
    return sorted(entries, key=lambda e: (_suspect(e, verified),
                                          not (verified or {}).get(e.entry_id, "").startswith("verified"),
                                          e.model, e.entry_id))


def tables(entries: list[LeaderboardEntry], verified: dict[str, str] | None = None
           ) -> list[tuple[str, str, list[Column], list[tuple[str, list[Cell]]]]]:
    """(task, metric, columns, [(entry id, cells)]) for every task and metric any entry reports (rows in
    :func:`ordered` order)."""
    entries = ordered(entries, verified)
    out = []
    for task in sorted({t for e in entries for t in e.tasks}):
        on_task = [e for e in entries if task in e.tasks]
        cols = columns(on_task, task)
        for metric in [m for m in METRIC_LABEL if any(m in e.metrics for e in on_task)]:
            rows = [(e.entry_id, row(e, task, metric, cols, verified)) for e in on_task if metric in e.metrics]
            out.append((task, metric, cols, rows))
    return out


def _heading(task: str, metric: str) -> str:
    return f"{task}: {metric_title(metric)}"


INTRO = ("REAL and REGURG are corpus scores of students trained on human and on regurgitated (generated) targets "
         "for the same sources, with 95% intervals over test sentences and seeds (a calibrated seed level: "
         "Student's t per condition). D = (S_real - S_regurg) / S_real (sign "
         "flipped for TER, so D > 0 always means real data is better). R = (S_m - S_regurg) / (S_real - S_regurg) "
         "for a mitigation m: 0 = no better than regurgitated data, 1 = as good as real data; n/a when the "
         "degradation it would recover is not established after Holm's correction. Every number was recomputed from the run's logged lm-eval "
         "samples (stored beside the entries in evidence/) at submission and again at every build. An entry "
         "flagged by a plausibility rule (contaminated: 10% or more exact copies of the test references; near-copy: "
         "2% or more hypotheses within sentence chrF 60 of them; above-real: a condition beats REAL by 5 standard "
         "errors or more; outlier-seed) is listed after every unflagged entry, and so is an entry whose re-run "
         "failed. Re-run: K students re-trained and re-evaluated from the entry alone (regurg-bench verify "
         "--entry), by the board's CI or a user; verified entries are listed first.")


# ------------------------------------------------------------------------------------ Markdown
def _md(text: str) -> str:
    """Escape text for a Markdown table cell (no markup, no HTML, no column breaks)."""
    out = html.escape(text, quote=False)
    for ch in "\\`*_[]|#":
        out = out.replace(ch, "\\" + ch)
    return out


def to_markdown(name: str, entries: list[LeaderboardEntry], with_plot: bool, verified: dict[str, str] | None = None
                ) -> str:
    lines = [f"# regurg-bench leaderboard: {_md(name)}", "",
             f"Generated by `regurg-bench leaderboard build {name}` from {len(entries)} "
             f"entr{'y' if len(entries) == 1 else 'ies'} in `entries/`; do not edit by hand. "
             "Sortable version: `index.html`.", "", INTRO, ""]
    if not entries:
        lines += ["No entries yet: submit a run with `regurg-bench submit RUN_DIR --leaderboard "
                  f"{name}`.", ""]
        return "\n".join(lines)
    for task, metric, cols, rows in tables(entries, verified):
        lines += [f"## {_md(_heading(task, metric))}", ""]
        lines.append("| " + " | ".join(_md(c.label) for c in cols) + " |")
        lines.append("|" + "|".join("---:" if c.numeric else "---" for c in cols) + "|")
        for _, cells in rows:
            # Numeric cells are made here from floats (digits, brackets, a status): only text cells need escaping.
            lines.append("| " + " | ".join((c.text + (f" ({c.note})" if c.note else "")) if col.numeric
                                           else _md(c.text) for c, col in zip(cells, cols, strict=True)) + " |")
        lines.append("")
    if with_plot:
        lines += ["![REAL and REGURG scores per entry with 95% intervals](scores.png)", ""]
    lines += ["## Provenance", "",
              "| entry | run | config hash | seeds | tasks (version) | lm-eval | bootstrap |",
              "|---|---|---|---|---|---|---|"]
    for e in ordered(entries, verified):
        tasks = ", ".join(f"{t} ({e.task_versions[t]})" for t in e.tasks)
        boot = f"{e.scoring.resamples} resamples, seed {e.scoring.seed}, {int(round(e.scoring.level * 100))}%"
        lines.append("| " + " | ".join(_md(x) for x in (e.entry_id, e.run_name, e.config_hash,
                                                         ",".join(map(str, e.seeds)), tasks, e.lm_eval_version,
                                                         boot)) + " |")
    sigs = sorted({(m, s) for e in entries for m, s in e.sacrebleu_signatures.items()})
    lines += ["", "| metric | sacrebleu signature |", "|---|---|"]
    lines += [f"| {_md(m)} | {_md(s)} |" for m, s in sigs]
    lines.append("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ HTML
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:98%;color:#222}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}
.wrap{overflow-x:auto}
table{border-collapse:collapse;font-size:85%}
th,td{border:1px solid #ccc;padding:.25em .5em;white-space:nowrap}
th{background:#f3f3f3}
table.sortable th{cursor:pointer;user-select:none;position:sticky;top:0}
table.sortable th:hover{background:#e6e6e6}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.ci{color:#666}.note{color:#a60;font-size:90%}
img{max-width:100%}
code{font-size:90%}
""".strip()

#: Click a header to sort by it; click again to reverse. Numbers sort numerically by data-sort-value;
#: empty values always go last. Array.prototype.sort is stable, so ties keep their previous order.
SCRIPT = """
(function () {
  "use strict";
  function value(cell, numeric) {
    var raw = cell.getAttribute("data-sort-value");
    if (raw === null) { raw = cell.textContent; }
    if (raw === "") { return null; }
    if (!numeric) { return raw.toLowerCase(); }
    var x = parseFloat(raw);
    return isNaN(x) ? null : x;
  }
  function sortBy(table, th, col) {
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    var numeric = th.getAttribute("data-type") === "number";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      // a flagged (contaminated) entry stays below every unflagged one, whatever the column
      var fa = a.hasAttribute("data-flagged") ? 1 : 0, fb = b.hasAttribute("data-flagged") ? 1 : 0;
      if (fa !== fb) { return fa - fb; }
      var x = value(a.cells[col], numeric), y = value(b.cells[col], numeric);
      if (x === null || y === null) { return (x === null ? 1 : 0) - (y === null ? 1 : 0); }
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return ascending ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (ev) {
        if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
}());
""".strip()

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "base-uri 'none'; form-action 'none'")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _html_cell(cell: Cell, numeric: bool, key: str) -> str:
    if cell.text == MISSING or not numeric or " [" not in cell.text:
        body = _e(cell.text)
    else:
        value, ci = cell.text.split(" [", 1)
        body = f"{_e(value)} <span class=\"ci\">[{_e(ci)}</span>"
    if cell.note:
        body += f" <span class=\"note\">{_e(cell.note)}</span>"
    cls = " class=\"num\"" if numeric else ""
    return f"<td{cls} data-col=\"{_e(key)}\" data-sort-value=\"{_e(cell.sort)}\">{body}</td>"


def to_html(name: str, entries: list[LeaderboardEntry], png: bytes | None, verified: dict[str, str] | None = None
            ) -> str:
    title = f"regurg-bench leaderboard: {name}"
    parts = ["<!doctype html>", "<html lang=\"en\">", "<head>", "<meta charset=\"utf-8\">",
             f"<meta http-equiv=\"Content-Security-Policy\" content=\"{_e(CSP)}\">",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
             "<link rel=\"icon\" href=\"data:,\">",
             f"<title>{_e(title)}</title>", f"<style>\n{CSS}\n</style>", "</head>", "<body>",
             f"<h1>{_e(title)}</h1>",
             f"<p>{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}. Click a column header to sort; click "
             "again to reverse.</p>", f"<p>{_e(INTRO)}</p>"]
    if not entries:
        parts.append(f"<p id=\"empty\">No entries yet: submit a run with <code>regurg-bench submit RUN_DIR "
                     f"--leaderboard {_e(name)}</code>.</p>")
    flagged = {e.entry_id for e in entries if _suspect(e, verified)}
    for task, metric, cols, rows in tables(entries, verified):
        table_id = f"t-{task}-{metric}".replace("+", "p")
        parts.append(f"<h2>{_e(_heading(task, metric))}</h2>")
        parts.append(f"<div class=\"wrap\"><table class=\"sortable\" id=\"{_e(table_id)}\" data-task=\"{_e(task)}\" "
                     f"data-metric=\"{_e(metric)}\">")
        parts.append("<thead><tr>" + "".join(
            f"<th scope=\"col\" tabindex=\"0\" data-col=\"{_e(c.key)}\" "
            f"data-type=\"{'number' if c.numeric else 'text'}\"" + (f" title=\"{_e(c.title)}\"" if c.title else "")
            + f">{_e(c.label)}</th>" for c in cols) + "</tr></thead>")
        parts.append("<tbody>")
        for entry_id, cells in rows:
            flag = " data-flagged=\"1\"" if entry_id in flagged else ""
            parts.append(f"<tr data-entry-id=\"{_e(entry_id)}\"{flag}>"
                         + "".join(_html_cell(cell, col.numeric, col.key) for cell, col in zip(cells, cols, strict=True))
                         + "</tr>")
        parts.append("</tbody></table></div>")
    if png is not None:
        data = base64.b64encode(png).decode("ascii")
        parts.append("<h2>Scores</h2>")
        parts.append(f"<img id=\"plot\" alt=\"REAL and REGURG scores per entry with 95% intervals\" "
                     f"src=\"data:image/png;base64,{data}\">")
    if entries:
        parts.append("<h2>Provenance</h2><div class=\"wrap\"><table><thead><tr><th>entry</th><th>run</th>"
                     "<th>config hash</th><th>tasks (version)</th><th>lm-eval</th><th>sacrebleu signatures</th>"
                     "</tr></thead><tbody>")
        for e in ordered(entries, verified):
            tasks = ", ".join(f"{t} ({e.task_versions[t]})" for t in e.tasks)
            sigs = "<br>".join(_e(f"{m}: {s}") for m, s in sorted(e.sacrebleu_signatures.items()))
            parts.append(f"<tr><td>{_e(e.entry_id)}</td><td>{_e(e.run_name)}</td><td><code>{_e(e.config_hash)}"
                         f"</code></td><td>{_e(tasks)}</td><td>{_e(e.lm_eval_version)}</td><td>{sigs}</td></tr>")
        parts.append("</tbody></table></div>")
    parts += curve_section([e for e in ordered(entries, verified) if e.collapse is not None])  # v3 entries
    parts += [f"<script>\n{SCRIPT}\n</script>", "</body>", "</html>", ""]
    return "\n".join(parts)


# ------------------------------------------------------------------------------------ plot
def plot_png(entries: list[LeaderboardEntry]) -> bytes | None:
    """REAL and every REGURG score per entry with its interval, one panel per task and metric (PNG bytes)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = tables(entries)
    if not panels:
        return None
    entries = ordered(entries)
    tasks = sorted({p[0] for p in panels})
    metrics = [m for m in METRIC_LABEL if any(p[1] == m for p in panels)]
    height = 1.2 + 0.45 * len(entries)
    fig = Figure(figsize=(4.6 * len(metrics), height * len(tasks)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(tasks), len(metrics), squeeze=False)
    for i, task in enumerate(tasks):
        on_task = [e for e in entries if task in e.tasks]
        conds = ["real"] + sorted({c for e in on_task for c, info in e.conditions.items() if info.kind == "regurg"})
        for j, metric in enumerate(metrics):
            ax = axes[i][j]
            for k, cond in enumerate(conds):
                pts = [(y + 0.15 * (k - (len(conds) - 1) / 2), s) for y, e in enumerate(on_task)
                       if (s := e.scores.get(task, {}).get(cond, {}).get(metric)) is not None]
                ax.errorbar([s.score for _, s in pts], [y for y, _ in pts], fmt="o", capsize=3, markersize=4,
                            xerr=[[s.score - s.ci_low for _, s in pts], [s.ci_high - s.score for _, s in pts]],
                            color="tab:green" if cond == "real" else f"C{3 + k}",
                            label="REAL" if cond == "real" else f"REGURG {cond.removeprefix('regurg_')}")
            ax.set_yticks(range(len(on_task)), [e.model for e in on_task] if j == 0 else [""] * len(on_task))
            ax.set_ylim(len(on_task) - 0.5, -0.5)
            ax.set_title(_heading(task, metric), fontsize=9)
            ax.grid(axis="x", alpha=0.3)
    # One legend under the panels (inside a panel it can hide a point).
    legend = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="lower center", ncol=len(legend), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    buf = io.BytesIO()
    # No "Software" (matplotlib version) or date metadata: the same entries give the same bytes.
    fig.savefig(buf, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buf.getvalue()


def build(folder: Path, name: str, entries: list[LeaderboardEntry]) -> list[Path]:
    """Write README.md, index.html and scores.png of leaderboard ``name`` into ``folder``."""
    png = plot_png(entries)
    verified = verification_labels(folder, entries)
    written = []
    plot_path = folder / "scores.png"
    if png is None:
        plot_path.unlink(missing_ok=True)  # no entries: no stale plot
    else:
        write_file(plot_path, png)
        written.append(plot_path)
    for filename, text in (("README.md", to_markdown(name, entries, png is not None, verified)),
                           ("index.html", to_html(name, entries, png, verified))):
        write_file(folder / filename, text)
        written.append(folder / filename)
    return written
