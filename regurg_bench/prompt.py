"""The one prompt format of regurg-bench, shared by the lm-eval tasks, the trainer and the generators.

A trained student sees exactly what the ``regurg_mt`` tasks show it, so its scores measure translation
and not prompt mismatch::

    English: In the beginning God created the heavens and the earth.
    Spanish:

The target follows after one space and ends at the first newline (lm-eval's ``until: ["\\n"]``).
"""

from __future__ import annotations

from regurg_bench.corpora.base import language_name

PROMPT_TEMPLATE = "{src_name}: {source}\n{tgt_name}:"
TARGET_DELIMITER = " "
STOP_SEQUENCES: tuple[str, ...] = ("\n",)


def render_prompt(source: str, src_lang: str, tgt_lang: str) -> str:
    """The prompt for translating ``source`` from ``src_lang`` into ``tgt_lang`` (no target)."""
    return PROMPT_TEMPLATE.format(src_name=language_name(src_lang), tgt_name=language_name(tgt_lang),
                                  source=source)


def render_example(source: str, target: str, src_lang: str, tgt_lang: str) -> tuple[str, str]:
    """(prompt, completion) for training: the loss goes on the completion only."""
    return render_prompt(source, src_lang, tgt_lang), TARGET_DELIMITER + target + STOP_SEQUENCES[0]
