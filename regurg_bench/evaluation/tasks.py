"""Python hooks of the ``regurg_mt`` lm-eval tasks (called from ``task_configs/regurg_mt/utils.py``).

lm-eval calls ``custom_dataset`` as ``fn(**metadata, **dataset_kwargs)``; ``metadata`` includes the
CLI's ``--model_args`` and ``--metadata``, hence the ``**_`` catch-alls. Data is always resolved from
the package and the user cache, never from the working directory.
"""

from __future__ import annotations

import json
from typing import Any

from regurg_bench.corpora.base import CorpusError, Pair, language_name
from regurg_bench.prompt import render_prompt

#: The directions of the embedded corpus that become ``regurg_mt_<direction>`` tasks.
EMBEDDED_DIRECTIONS: tuple[str, ...] = ("en-es", "es-en", "en-fr", "fr-en")
GROUP_NAME = "regurg_mt"
CUSTOM_TASK_NAME = "regurg_mt_custom"


def task_name(direction: str) -> str:
    return f"{GROUP_NAME}_{direction}"


def pairs_to_docs(pairs: list[Pair]) -> list[dict[str, str]]:
    """lm-eval docs: flat string fields only (lm-eval hashes and logs them)."""
    return [{"id": p.id, "source": p.source, "target": p.target, "src_lang": p.src_lang,
             "tgt_lang": p.tgt_lang, "src_name": language_name(p.src_lang),
             "tgt_name": language_name(p.tgt_lang)} for p in pairs]


def _dataset_dict(test: list[Pair], validation: list[Pair]):
    import datasets

    return datasets.DatasetDict({
        "test": datasets.Dataset.from_list(pairs_to_docs(test)),
        "validation": datasets.Dataset.from_list(pairs_to_docs(validation)),
    })


def embedded_dataset(regurg_direction: str, **_: Any):
    """Test (and few-shot dev) split of one direction of the embedded Bible corpus."""
    from regurg_bench.corpora.bible import load_bible_pairs

    return _dataset_dict(load_bible_pairs(regurg_direction, "test"),
                         load_bible_pairs(regurg_direction, "dev"))


def custom_dataset(corpus: str | None = None, src_lang: str | None = None, tgt_lang: str | None = None,
                   fewshot_corpus: str | None = None, corpus_options: dict | str | None = None,
                   **_: Any):
    """A user's own test set, given through ``--metadata``.

    Example::

        lm_eval --model hf --model_args pretrained=DIR --tasks regurg_mt_custom \\
            --metadata '{"corpus": "/data/newstest.tsv", "src_lang": "de", "tgt_lang": "en"}'

    ``corpus`` is a corpus spec (a ``.tsv``/``.jsonl`` path, ``moses:PREFIX``, ``hf:PATH_OR_ID`` or
    ``bible:en-es``; see ``regurg-bench corpus --help``). ``fewshot_corpus`` (optional) supplies
    few-shot examples; without it few-shot examples come from the test set itself (lm-eval excludes
    the current document).
    """
    from regurg_bench.corpora.spec import corpus_from_spec

    if not corpus or not src_lang or not tgt_lang:
        raise CorpusError(
            f"task {CUSTOM_TASK_NAME} needs --metadata with 'corpus', 'src_lang' and 'tgt_lang', e.g. "
            """--metadata '{"corpus": "/path/test.tsv", "src_lang": "de", "tgt_lang": "en"}'""",
            path="--metadata", field="corpus" if not corpus else ("src_lang" if not src_lang else "tgt_lang"))
    options = json.loads(corpus_options) if isinstance(corpus_options, str) else (corpus_options or {})
    test = list(corpus_from_spec(corpus, src_lang, tgt_lang, **options).iter_pairs())
    shots = (list(corpus_from_spec(fewshot_corpus, src_lang, tgt_lang, **options).iter_pairs())
             if fewshot_corpus else test)
    return _dataset_dict(test, shots)


def doc_to_text(doc: dict[str, str]) -> str:
    """The prompt (see :mod:`regurg_bench.prompt`)."""
    return render_prompt(doc["source"], doc["src_lang"], doc["tgt_lang"])


def test_set_fingerprints(task_names: list[str] | None = None) -> dict[str, dict[str, int | str]]:
    """Size and content fingerprint of the embedded test sets (all, or those in ``task_names``).

    The committed ``task_configs/regurg_mt/test_set_fingerprints.json`` holds the published values;
    results carry the values computed at evaluation time, so the two can be compared.
    """
    from regurg_bench.corpora.base import fingerprint_pairs
    from regurg_bench.corpora.bible import load_bible_pairs

    out: dict[str, dict[str, int | str]] = {}
    for direction in EMBEDDED_DIRECTIONS:
        name = task_name(direction)
        if task_names is None or name in task_names:
            pairs = load_bible_pairs(direction, "test")
            out[name] = {"pairs": len(pairs), "fingerprint": fingerprint_pairs(pairs)}
    return out
