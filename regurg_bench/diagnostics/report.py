"""The result of ``diagnose()``: JSON (written atomically), a rich table and a PNG plot.

The PNG has one panel per key statistic with one bar per condition, human ("real") first, so a
generator is read against the human value side by side; a last panel draws the vocabulary growth
curves (types after the first k tokens, equal token counts for all conditions).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench import __version__
from regurg_bench.atomic import atomic_write
from regurg_bench.versions import package_versions

SCHEMA_VERSION = 1
FAMILY_TITLES = {
    "errors": "Error-rate proxies (reference-based: vs the human target of the same id; reference-free)",
    "diversity": "Lexical diversity (equal token budget; TTR of the whole text is length-biased)",
    "uniformity": "Format uniformity",
}
REAL = "real"


def _versions() -> dict[str, str]:
    return {"regurg_bench": __version__, **package_versions("sacrebleu", "py3langid", "numpy", "matplotlib",
                                                            missing="missing")}


def _clean(value: Any) -> Any:
    """JSON-safe: non-finite floats become ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def format_value(value: float | None, percent: bool = False) -> str:
    """Compact text for a table cell: ``n/a`` for a missing value, percentages with one decimal."""
    if value is None:
        return "n/a"
    if percent:
        return f"{100 * value:.1f}%"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


@dataclass
class DiagnosticsReport:
    """Statistics per condition (``stats[condition][key]``, ``None`` = not available) and what they mean.

    ``stat_info[key]`` holds ``diagnostic``, ``family``, ``label``, ``better`` ("higher"/"lower"/None),
    ``key`` (plotted) and ``percent``. ``signatures`` has every diagnostic's settings, ``notes`` says why
    a diagnostic was not available, ``timing`` its seconds and sentences/s over all conditions.
    """

    split: str
    conditions: list[str]
    n_pairs: int
    dropped: dict[str, int]
    token_budget: int | None
    stats: dict[str, dict[str, float | None]]
    stat_info: dict[str, dict[str, Any]]
    signatures: dict[str, str]
    notes: dict[str, str]
    timing: dict[str, dict[str, float | None]]
    fingerprints: dict[str, str]
    created: str
    versions: dict[str, str] = field(default_factory=_versions)
    schema: int = SCHEMA_VERSION

    # -- JSON --------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return _clean(dataclasses.asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)

    def write_json(self, path: str | Path) -> Path:
        """Write atomically (a reader never sees half a file)."""
        path = Path(path)
        with atomic_write(path) as handle:
            handle.write(self.to_json() + "\n")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiagnosticsReport:
        if data.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"diagnostics schema {data.get('schema')!r}, expected {SCHEMA_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def read_json(cls, path: str | Path) -> DiagnosticsReport:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    # -- accessors ---------------------------------------------------------------------------------
    def value(self, condition: str, key: str) -> float | None:
        return self.stats.get(condition, {}).get(key)

    def key_stats(self) -> list[str]:
        """Plotted statistics: the key ones with at least one available value."""
        return [k for k, info in self.stat_info.items()
                if info.get("key") and any(self.value(c, k) is not None for c in self.conditions)]

    def growth_curve(self, condition: str) -> list[tuple[int, float]]:
        """(tokens, types) points of the vocabulary growth curve, by token count."""
        points = []
        for key, value in self.stats.get(condition, {}).items():
            if key.startswith("types_at_") and key != "types_at_budget" and value is not None:
                points.append((_parse_count(key.removeprefix("types_at_")), value))
        budget, at_budget = self.value(condition, "budget_tokens"), self.value(condition, "types_at_budget")
        if budget and at_budget is not None and all(p != int(budget) for p, _ in points):
            points.append((int(budget), at_budget))
        return sorted(points)

    # -- table -------------------------------------------------------------------------------------
    def table(self):
        """A rich ``Table``: one row per statistic, grouped by family, one column per condition."""
        from rich.table import Table

        table = Table(title=f"Diagnostics: {self.split} ({self.n_pairs:,} pairs per condition, "
                            f"token budget {self.token_budget or 'n/a'})",
                      caption="↑/↓: the direction of more human-like or better data; red: worse than real, "
                              "green: better than real (by > 2 % relative)")
        table.add_column("statistic")
        for cond in self.conditions:
            table.add_column(cond, justify="right")
        for family, title in FAMILY_TITLES.items():
            keys = [k for k, info in self.stat_info.items() if info["family"] == family]
            if not keys:
                continue
            table.add_section()
            table.add_row(f"[bold]{title}[/bold]", *[""] * len(self.conditions))
            for key in keys:
                info = self.stat_info[key]
                arrow = {"higher": " ↑", "lower": " ↓"}.get(info.get("better") or "", "")
                cells = [self._cell(cond, key, info) for cond in self.conditions]
                table.add_row(f"{info['label']}{arrow} [dim]{key}[/dim]", *cells)
        return table

    def _cell(self, cond: str, key: str, info: dict[str, Any]) -> str:
        value = self.value(cond, key)
        text = format_value(value, info.get("percent", False))
        real = self.value(REAL, key)
        better = info.get("better")
        if cond == REAL or value is None or real is None or better is None:
            return text
        diff = value - real
        if abs(diff) <= 0.02 * max(abs(real), 1e-12):
            return text
        good = diff > 0 if better == "higher" else diff < 0
        return f"[green]{text}[/green]" if good else f"[red]{text}[/red]"

    def print_table(self, console=None) -> None:
        """Print the table, then notes (unavailable diagnostics), signatures and throughput."""
        from rich.console import Console

        console = console or Console()
        console.print(self.table())
        for name, note in self.notes.items():
            console.print(f"[yellow]{name}[/yellow]: {note}")
        dropped = {k: v for k, v in self.dropped.items() if v}
        if dropped:
            console.print(f"[yellow]ids not shared by every condition were left out:[/yellow] {dropped}")
        for name, sig in self.signatures.items():
            speed = self.timing.get(name, {}).get("sentences_per_s")
            rate = f"{speed:,.0f} sentences/s" if speed else "not run"
            console.print(f"[dim]{sig}  ({rate})[/dim]")

    # -- plot --------------------------------------------------------------------------------------
    def plot(self, path: str | Path, stats: list[str] | None = None) -> Path:
        """A PNG: one bar panel per key statistic (real first), plus the vocabulary growth curves."""
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        keys = stats if stats is not None else self.key_stats()
        curves = {c: self.growth_curve(c) for c in self.conditions}
        n_panels = len(keys) + (1 if any(curves.values()) else 0)
        ncols = min(4, max(1, n_panels))
        nrows = max(1, math.ceil(n_panels / ncols))
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.3 * nrows), squeeze=False)
        palette = plt.get_cmap("tab10").colors
        colours = {c: ("#555555" if c == REAL else palette[i % len(palette)]) for i, c in enumerate(self.conditions)}
        flat = list(axes.flat)
        for ax, key in zip(flat, keys, strict=False):
            info = self.stat_info.get(key, {"label": key})
            scale = 100.0 if info.get("percent") else 1.0
            values = [self.value(c, key) for c in self.conditions]
            heights = [v * scale if v is not None else 0.0 for v in values]
            bars = ax.bar(range(len(self.conditions)), heights, color=[colours[c] for c in self.conditions])
            for bar, v in zip(bars, values, strict=True):
                label = "n/a" if v is None else format_value(v, info.get("percent", False))
                ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
            arrow = {"higher": " (↑)", "lower": " (↓)"}.get(info.get("better") or "", "")
            unit = " [%]" if info.get("percent") and "%" not in info["label"] else ""
            ax.set_title(f"{info['label']}{unit}{arrow}", fontsize=9)
            ax.set_xticks(range(len(self.conditions)), self.conditions, rotation=20, ha="right", fontsize=8)
            ax.margins(y=0.18)
            ax.tick_params(axis="y", labelsize=8)
        used = len(keys)
        if any(curves.values()):
            ax = flat[used]
            for cond, points in curves.items():
                if points:
                    xs, ys = zip(*points, strict=True)
                    ax.plot(xs, ys, marker="o", ms=3, color=colours[cond], label=cond)
            ax.set_xscale("log")
            ax.set_title("vocabulary growth: types vs tokens (↑)", fontsize=9)
            ax.set_xlabel("tokens (same for every condition)", fontsize=8)
            ax.legend(fontsize=7)
            ax.tick_params(labelsize=8)
            used += 1
        for ax in flat[used:]:
            ax.axis("off")
        fig.suptitle(f"{self.split}: {self.n_pairs:,} pairs per condition, real vs generated "
                     f"(token budget {self.token_budget or 'n/a'})", fontsize=10)
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))  # room for the suptitle
        path = Path(path)
        with atomic_write(path, "wb") as handle:
            fig.savefig(handle, format="png", dpi=110)
        plt.close(fig)
        return path

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """``diagnostics.json`` and ``diagnostics.png`` in ``out_dir``."""
        out_dir = Path(out_dir)
        return {"json": self.write_json(out_dir / "diagnostics.json"), "png": self.plot(out_dir / "diagnostics.png")}


def _parse_count(text: str) -> int:
    factor = {"k": 1_000, "M": 1_000_000}.get(text[-1:], 1)
    return int(round(float(text[:-1] if factor > 1 else text) * factor))
