"""Installed package versions: the one helper every card, report and signature uses."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

#: Distributions recorded with every evaluation and every split build: those that can change a score.
EVAL_PACKAGES = ("regurg-bench", "lm-eval", "sacrebleu", "transformers", "torch", "datasets", "vllm")


def package_versions(*names: str, missing: str | None = None) -> dict[str, str]:
    """``{name: version}`` of installed distributions, in the order given.

    A distribution that is not installed is left out when ``missing`` is None, else recorded with the
    value ``missing`` (e.g. ``"absent"``): callers keep their recorded format, which enters signatures
    and hashes.
    """
    out: dict[str, str] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            if missing is not None:
                out[name] = missing
    return out
