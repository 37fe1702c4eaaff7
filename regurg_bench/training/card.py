"""The training card: what a checkpoint is, how it was made and how training went (``training_card.json``)."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from regurg_bench.atomic import atomic_write
from regurg_bench.versions import package_versions

CARD_NAME = "training_card.json"
CARD_VERSION = 1


def training_package_versions() -> dict[str, str]:
    """Python and the installed training libraries, recorded in every card."""
    return {"python": platform.python_version(),
            **package_versions("regurg-bench", "torch", "transformers", "peft", "tokenizers", "accelerate")}


def write_card(out_dir: Path, card: dict[str, Any]) -> Path:
    """Write the card atomically; it is written last, so its presence marks a finished run."""
    card = {"card_version": CARD_VERSION, **card, "versions": training_package_versions()}
    path = Path(out_dir) / CARD_NAME
    with atomic_write(path) as handle:
        json.dump(card, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    return path


def read_card(out_dir: str | Path) -> dict[str, Any] | None:
    path = Path(out_dir) / CARD_NAME
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
