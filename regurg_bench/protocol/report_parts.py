"""What the run's report (:mod:`.report`) and the collapse study's (:mod:`.collapse`) share: number formats,
drawing and saving a figure, and reading logged samples. Its own module, so that the report can render the
collapse blocks without the two importing each other."""

from __future__ import annotations

from pathlib import Path

from regurg_bench.results import RunEffect, RunScore
from regurg_bench.scoring.effects import OK


def load_samples(eval_dir: str | Path, samples_file: str) -> tuple[list[int], list[str], list[str]]:
    """(doc ids, hypotheses, references) of an lm-eval samples file, ordered by ``doc_id``: the one reader of
    logged samples, shared with the leaderboard's verifier (:func:`regurg_bench.leaderboard.verify.read_samples`)."""
    from regurg_bench.leaderboard.evidence import FolderFiles
    from regurg_bench.leaderboard.verify import read_samples

    return read_samples(FolderFiles(Path(eval_dir)), samples_file, str(Path(eval_dir) / samples_file))


def fmt_bound(x: float | None) -> str:
    """An interval end with 3 decimals; None (an unbounded end) prints as ±inf."""
    return "±inf" if x is None else f"{x:.3f}"


def fmt_effect(effect: RunEffect, status: bool = True) -> str:
    """An effect (D, R, D_k, a claim's difference) and its interval with 3 decimals, then its status where it is
    not ok (``status``); without an estimate, ``n/a (status)``."""
    if effect.estimate is None:
        return f"n/a ({effect.status})"
    text = f"{effect.estimate:.3f} [{fmt_bound(effect.ci_low)}, {fmt_bound(effect.ci_high)}]"
    return text if not status or effect.status == OK else f"{text} ({effect.status})"


def fmt_score(s: RunScore) -> str:
    """A score and its interval with 2 decimals: ``12.34 [11.80, 12.90]``."""
    return f"{s.score:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}]"


def panels(n: int, height: float, width: float = 4.5):
    """``(figure, axes)``: ``n`` panels side by side (``axes[0][i]``), each ``width`` by ``height`` inches, on
    matplotlib's file-only Agg backend (the report draws without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, n, figsize=(width * n, height), squeeze=False)


def save_figure(fig, path: Path) -> None:
    """Lay a matplotlib figure out (``tight_layout``) and save it atomically, without the software tag
    (identical bytes run after run)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
