"""Printing user text on the terminal: never through rich markup, never wrapped.

Corpus errors, paths, JSONL keys and table titles are user text: ``[/red]`` in a header must not crash
the CLI and ``v[bold]2.tsv`` must be shown as written. Errors go to stderr as one plain line so that
``file:line`` is never split by wrapping and stays greppable.
"""

from __future__ import annotations

import sys

from rich.text import Text


def print_error(message: object) -> None:
    """``error: <message>`` on stderr, exactly as given (no markup, no wrapping)."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def plain(text: object) -> Text:
    """User text for a rich table cell or title: shown literally (rich would parse ``[...]`` as markup)."""
    return Text(str(text))
