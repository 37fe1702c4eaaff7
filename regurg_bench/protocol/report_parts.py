"""What the run's report (:mod:`.report`) and the collapse study's (:mod:`.collapse`) share: metric labels, a
number format, saving a figure, and reading logged samples. Its own module, so that the report can render
the collapse blocks without the two importing each other."""

from __future__ import annotations

from pathlib import Path

METRIC_LABEL = {"bleu": "BLEU", "chrf": "chrF", "ter": "TER"}


def load_samples(eval_dir: str | Path, samples_file: str) -> tuple[list[int], list[str], list[str]]:
    """(doc ids, hypotheses, references) of an lm-eval samples file, ordered by ``doc_id``: the one reader of
    logged samples, shared with the leaderboard's verifier (:func:`regurg_bench.leaderboard.verify.read_samples`)."""
    from regurg_bench.leaderboard.evidence import FolderFiles
    from regurg_bench.leaderboard.verify import read_samples

    return read_samples(FolderFiles(Path(eval_dir)), samples_file, str(Path(eval_dir) / samples_file))


def fmt_bound(x: float | None) -> str:
    """An interval end with 3 decimals; None (an unbounded end) prints as ±inf."""
    return "±inf" if x is None else f"{x:.3f}"


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend (the report draws without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> None:
    """Save a matplotlib figure atomically, without the software tag (identical bytes run after run)."""
    import matplotlib.pyplot as plt

    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, metadata={"Software": None})
    plt.close(fig)
    tmp.replace(path)
