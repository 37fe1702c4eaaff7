"""The collapse curve of a v3 entry: taken from a run's ``collapse`` section, drawn on the board's page.

:func:`curve_part` copies what the entry carries from the run's section (read leniently by
:class:`~.schema.RunCollapse`): the score of every generation with its per-seed scores, D_k per task,
mode, generation and metric with its interval, and the claims with their verdicts. Fields of a claim the
entry does not model are left out, so the study may add some without breaking submissions; what the entry
carries is checked strictly by :class:`~.schema.EntryCollapse`.

:func:`curve_html` draws one entry's curve as inline SVG (the page's content security policy allows no
external image, and inline SVG needs no ``img-src``): one panel per task and metric, D_k against the
generation, one line per mode with its interval bars, then the claims' verdicts seed by seed; :func:`curve_section`
puts the curves on the page under their styles, a heading and an introduction.
"""

from __future__ import annotations

import html
from typing import Any

from regurg_bench.leaderboard.schema import EntryCollapse, LeaderboardEntry, RunCollapse
from regurg_bench.results import CollapseClaim

MODE_COLOR = {"replace": "#d62728", "accumulate": "#1f77b4", "accumulate_equal": "#2ca02c"}
_CLAIM_FIELDS = ("estimate", "ci_low", "ci_high", "status", "level", "p_value", "p_adjusted", "verdict")
_W, _H, _PAD = 260, 170, 34  # one panel, in px
CURVE_INTRO = ("Entries of runs with a collapse study: students trained on the previous generation's outputs "
               "(replace) or on them plus the human data (accumulate, accumulate_equal). D_k is generation k's "
               "relative loss against generation 0 (higher is worse), with its 95% interval; the claims' verdicts "
               "follow, pooled and seed by seed.")
#: the styles of the curves' markup: only on pages with a curve (a page without one keeps its bytes)
CURVE_CSS = ("figure.curve{margin:1em 0;padding:.5em;border:1px solid #ddd}figure.curve figcaption{font-size:90%}"
             ".panels{display:flex;flex-wrap:wrap;gap:.5em}svg.curve-panel{background:#fafafa}"
             "table.claims td{white-space:normal}")


# ------------------------------------------------------------------------------ entry part
def _claim(cl: CollapseClaim) -> dict[str, Any] | None:
    """The entry's form of one claim of the run (None for a kind of claim the entry does not know)."""
    if cl.claim == "collapse_tail":
        gens = None if cl.per_generation is None else [g.model_dump(include={"generation", "estimate", "ci_low",
                                                                              "ci_high"}) for g in cl.per_generation]
        return cl.model_dump(include={"claim", "mode", "text", "verdict"}) | {
            "per_seed_verdicts": list(cl.per_seed_verdicts or []), "per_generation": gens}
    if cl.claim in ("collapse_growth", "collapse_bounded"):
        return cl.model_dump(include={"claim", "mode", "task", "text"}) | {"per_metric": {
            m: e.model_dump(include=set(_CLAIM_FIELDS), exclude_unset=True)
            | {"per_seed_verdicts": list(e.per_seed_verdicts or [])} for m, e in cl.per_metric.items()}}
    return None


def curve_part(section: RunCollapse | None, tasks: list[str]) -> dict[str, Any] | None:
    """The ``collapse`` part of an entry from a run's section (None when the run has none)."""
    if section is None:
        return None
    return {
        "generations": section.generations,
        "modes": list(section.modes),
        "seeds": list(section.seeds),
        "scores": {t: {c: {m: s.strict().model_dump() for m, s in per.items()} for c, per in section.scores[t].items()}
                   for t in tasks if t in section.scores},
        "degradation": {t: {mode: {k: {m: e.model_dump() for m, e in per.items()} for k, per in gens.items()}
                            for mode, gens in section.degradation[t].items()}
                        for t in tasks if t in section.degradation},
        "claims": [c for c in (_claim(cl) for cl in section.claims) if c is not None],
    }


# ------------------------------------------------------------------------------------ page
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _panel(c: EntryCollapse, task: str, metric: str) -> str:
    """One SVG panel: D_k (y) against generation k (x) for every mode, with interval bars."""
    points = [(mode, k, c.degradation[task][mode][str(k)].get(metric)) for mode in c.modes
              for k in range(1, c.generations + 1)]
    values = [0.0] + [v for _, _, e in points if e is not None
                      for v in (e.estimate, e.ci_low, e.ci_high) if v is not None]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0

    def x(k: int, mode: str | None = None) -> float:  # modes side by side at each k: no bar hides another
        shift = 0.0 if mode is None else 7.0 * (c.modes.index(mode) - (len(c.modes) - 1) / 2)
        return _PAD + (_W - 1.5 * _PAD) * (k - 0.5) / c.generations + shift

    def y(v: float) -> float:
        return 10 + (_H - _PAD - 10) * (hi - v) / (hi - lo)

    out = [f"<svg class=\"curve-panel\" data-task=\"{_e(task)}\" data-metric=\"{_e(metric)}\" width=\"{_W}\" "
           f"height=\"{_H}\" viewBox=\"0 0 {_W} {_H}\" role=\"img\" aria-label=\"{_e(f'D_k of {metric} on {task}')}\">",
           f"<title>{_e(f'{task}: D_k ({metric}) per generation')}</title>",
           f"<line x1=\"{_PAD}\" x2=\"{_W - 4}\" y1=\"{y(0.0):.2f}\" y2=\"{y(0.0):.2f}\" stroke=\"#999\" "
           "stroke-dasharray=\"3,3\"/>",
           f"<text x=\"2\" y=\"{y(hi):.2f}\" font-size=\"9\" dominant-baseline=\"hanging\">{hi:.3g}</text>",
           f"<text x=\"2\" y=\"{y(lo):.2f}\" font-size=\"9\">{lo:.3g}</text>"]
    for k in range(1, c.generations + 1):
        out.append(f"<text x=\"{x(k):.2f}\" y=\"{_H - _PAD + 14}\" font-size=\"10\" text-anchor=\"middle\">k={k}</text>")
    for mode in c.modes:
        color = MODE_COLOR.get(mode, "#555")
        line = [f"{x(k, mode):.2f},{y(e.estimate):.2f}" for m, k, e in points if m == mode and e is not None
                and e.estimate is not None]
        if len(line) > 1:
            out.append(f"<polyline points=\"{' '.join(line)}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\"/>")
        for m, k, e in points:
            if m != mode or e is None:
                continue
            if e.ci_low is not None and e.ci_high is not None:
                out.append(f"<line class=\"ci\" x1=\"{x(k, mode):.2f}\" x2=\"{x(k, mode):.2f}\" y1=\"{y(e.ci_low):.2f}\" "
                           f"y2=\"{y(e.ci_high):.2f}\" stroke=\"{color}\"/>")
            if e.estimate is not None:
                out.append(f"<circle class=\"dk\" cx=\"{x(k, mode):.2f}\" cy=\"{y(e.estimate):.2f}\" r=\"3\" fill=\"{color}\" "
                           f"data-mode=\"{_e(mode)}\" data-generation=\"{k}\" data-estimate=\"{e.estimate!r}\" "
                           f"data-ci-low=\"{_e(repr(e.ci_low))}\" data-ci-high=\"{_e(repr(e.ci_high))}\">"
                           f"<title>{_e(f'{mode}, k={k}: D={e.estimate:.3f} [{_ci(e.ci_low)}, {_ci(e.ci_high)}]')}"
                           "</title></circle>")
    out.append(f"<text x=\"{_W / 2:.0f}\" y=\"{_H - 4}\" font-size=\"10\" text-anchor=\"middle\">"
               f"{_e(metric)}: D_k vs generation 0</text>")
    out.append("</svg>")
    return "".join(out)


def _ci(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _claims_table(c: EntryCollapse) -> str:
    rows = []
    for cl in c.claims:
        if cl.claim == "collapse_tail":
            verdict = cl.verdict
            if cl.per_generation:
                verdict += "; " + ", ".join(f"k={g.generation}: {_ci(g.estimate)} [{_ci(g.ci_low)}, {_ci(g.ci_high)}]"
                                            for g in cl.per_generation)
            seeds = ", ".join(cl.per_seed_verdicts)
        else:
            verdict = "; ".join(f"{m}: {e.verdict}" for m, e in cl.per_metric.items())
            seeds = "; ".join(f"{m}: {', '.join(e.per_seed_verdicts)}" for m, e in cl.per_metric.items()
                              if e.per_seed_verdicts)
        rows.append(f"<tr data-claim=\"{_e(cl.claim)}\" data-mode=\"{_e(cl.mode)}\"><td>{_e(cl.text)}</td>"
                    f"<td>{_e(cl.mode)}</td><td>{_e(verdict)}</td><td>{_e(seeds)}</td></tr>")
    if not rows:
        return ""
    return ("<table class=\"claims\"><thead><tr><th>claim</th><th>mode</th><th>verdict</th><th>per seed</th></tr>"
            "</thead><tbody>" + "".join(rows) + "</tbody></table>")


def curve_html(entry_id: str, model: str, c: EntryCollapse) -> str:
    """One entry's curve: a ``<figure class="curve">`` with an SVG panel per task and metric and the claims."""
    legend = " ".join(f"<span style=\"color:{MODE_COLOR.get(m, '#555')}\">&#9679; {_e(m)}</span>" for m in c.modes)
    panels = "".join(_panel(c, task, metric) for task in sorted(c.degradation)
                     for metric in sorted({m for gens in c.degradation[task].values() for per in gens.values()
                                           for m in per}))
    return (f"<figure class=\"curve\" id=\"curve-{_e(entry_id)}\" data-entry-id=\"{_e(entry_id)}\">"
            f"<figcaption>{_e(model)} ({_e(entry_id)}): degradation D_k of generation k against generation 0, "
            f"{c.generations} generation(s), seeds {_e(', '.join(map(str, c.seeds)))}, 95% intervals. {legend}"
            f"</figcaption><div class=\"panels\">{panels}</div>{_claims_table(c)}</figure>")


def curve_section(entries: list[LeaderboardEntry]) -> list[str]:
    """The page's collapse section (its lines): the curves of ``entries``, which carry one, under their styles, a
    heading and an introduction; nothing at all without such entries."""
    if not entries:
        return []
    return [f"<style>\n{CURVE_CSS}\n</style>", "<h2 id=\"collapse\">Degradation across generations (collapse)</h2>",
            f"<p>{_e(CURVE_INTRO)}</p>"] + [curve_html(e.entry_id, e.model, e.collapse) for e in entries]
