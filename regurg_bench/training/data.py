"""Training data: read a split, fix the order (shuffle or curriculum), tokenize, plan and collate batches.

The whole batch schedule is computed up front from the seed, so step ``k`` always sees the same
examples: resuming after a kill is "skip to step k", and the order a curriculum gives is the order the
model consumes (no reordering, no bucketing, no shuffling).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regurg_bench.corpora.base import CorpusError, Pair, fingerprint_pairs
from regurg_bench.corpora.lines import iter_json_objects, read_lines
from regurg_bench.corpora.registry import CORPUS_SOURCES
from regurg_bench.prompt import render_example

#: Row fields that give a curriculum rank (lower comes first).
RANK_FIELDS = ("curriculum_rank", "order")
#: Files next to ``train.jsonl`` whose ``fingerprint`` we record as the split's declared fingerprint.
MANIFEST_NAMES = ("manifest.json", "dataset_card.json")


@dataclass
class SplitData:
    """The pairs of a split, in file order, with what identifies them."""

    pairs: list[Pair]
    fingerprint: str  # computed from the pairs (regurg_bench.corpora.base.fingerprint_pairs)
    declared_fingerprint: str | None = None  # from the split's manifest, when there is one
    ranks: dict[str, float] | None = None  # id -> curriculum rank, when every row has one
    provenance: dict[str, Any] = field(default_factory=dict)


def _read_split_jsonl(path: Path, src_lang: str | None, tgt_lang: str | None
                      ) -> tuple[list[Pair], dict[str, float] | None]:
    pairs: list[Pair] = []
    ranks: dict[str, float] = {}
    seen: set[str] = set()
    for lineno, row in iter_json_objects(path):
        values = {}
        for key, default in (("source", None), ("target", None), ("src_lang", src_lang),
                             ("tgt_lang", tgt_lang)):
            value = row.get(key, default)
            if not isinstance(value, str) or not value.strip():
                hint = " (or pass src_lang/tgt_lang)" if key.endswith("_lang") else ""
                raise CorpusError(f"missing or empty {key!r}{hint}", path=path, line=lineno, field=key)
            values[key] = value.strip() if key in ("source", "target") else value
        ident = str(row.get("id", f"{path.stem}.{lineno}"))
        if ident in seen:
            raise CorpusError(f"duplicate id {ident!r}", path=path, line=lineno, field="id")
        seen.add(ident)
        rank = next((row[k] for k in RANK_FIELDS if k in row), None)
        if rank is not None:
            ranks[ident] = float(rank)
        pairs.append(Pair(ident, values["source"], values["target"], values["src_lang"],
                          values["tgt_lang"], {"line": str(lineno)}))
    if not pairs:
        raise CorpusError("no pairs", path=path)
    if ranks and len(ranks) != len(pairs):
        raise CorpusError(f"{len(ranks)} of {len(pairs)} rows have a curriculum rank; give all or none",
                          path=path, field=RANK_FIELDS[0])
    return pairs, ranks or None


def _declared_fingerprint(folder: Path) -> str | None:
    for name in MANIFEST_NAMES:
        manifest = folder / name
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            fp = data.get("fingerprint")
            if isinstance(fp, dict):  # e.g. {"train": ..., "dev": ...}
                fp = fp.get("train")
            if isinstance(fp, str):
                return fp
    return None


def load_split(split: str, src_lang: str | None = None, tgt_lang: str | None = None,
               max_pairs: int | None = None) -> SplitData:
    """Read a split: a ``.jsonl`` file, a folder holding ``train.jsonl``, or a corpus spec string."""
    path = Path(split)
    declared, ranks = None, None
    if path.is_dir():
        declared = _declared_fingerprint(path)
        path = path / "train.jsonl"
        if not path.is_file():
            raise CorpusError("split folder has no train.jsonl", path=path.parent)
    if path.suffix in (".jsonl", ".json") and not path.exists() and split.partition(":")[0] not in CORPUS_SOURCES:
        raise CorpusError("file does not exist", path=path)  # a mistyped path, not a corpus spec
    if path.is_file() and path.suffix in (".jsonl", ".json"):
        pairs, ranks = _read_split_jsonl(path, src_lang, tgt_lang)
        provenance = {"kind": "jsonl", "path": str(path.resolve())}
    else:
        from regurg_bench.corpora.spec import corpus_from_spec

        source = corpus_from_spec(split, src_lang, tgt_lang)
        pairs = list(source.iter_pairs())
        provenance = source.provenance() | {"spec": split}
    if max_pairs is not None:
        pairs = pairs[:max_pairs]
        declared = None  # the manifest describes the whole split
        if ranks:
            ranks = {p.id: ranks[p.id] for p in pairs}
    return SplitData(pairs, fingerprint_pairs(pairs), declared, ranks, provenance)


def read_id_list(path: str | Path) -> list[str]:
    """Ids in order from a ``.txt`` (one per line) or ``.jsonl`` (``{"id": ...}`` or a JSON string per line)."""
    path = Path(path)
    ids: list[str] = []
    for lineno, line in read_lines(path):
        if not line.strip():
            continue
        if path.suffix in (".jsonl", ".json"):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise CorpusError(f"invalid JSON: {exc.msg} at column {exc.colno}", path=path, line=lineno) from None
            ident = row.get("id") if isinstance(row, dict) else row
            if not isinstance(ident, (str, int)) or isinstance(ident, bool):
                raise CorpusError("expected an id string or an object with an 'id'", path=path, line=lineno,
                                  field="id")
            ids.append(str(ident))
        else:
            ids.append(line.strip())
    if len(set(ids)) != len(ids):
        raise CorpusError("an id is listed twice", path=path)
    return ids


def example_order(split: SplitData, curriculum: str | None) -> tuple[str, list[int] | None]:
    """("curriculum"|"rank", indices in order) when the order is given, else ("shuffle", None)."""
    index = {p.id: i for i, p in enumerate(split.pairs)}
    if curriculum:
        ids = read_id_list(curriculum)
        missing = [i for i in ids if i not in index]
        if missing:
            raise CorpusError(f"{len(missing)} curriculum id(s) are not in the split, e.g. {missing[:3]}",
                              path=curriculum)
        return "curriculum", [index[i] for i in ids]
    if split.ranks:
        # Stable: equal ranks keep file order.
        return "rank", sorted(range(len(split.pairs)), key=lambda i: split.ranks[split.pairs[i].id])
    return "shuffle", None


# --- tokenization -------------------------------------------------------------------------------

def encode_pair(tokenizer, pair: Pair, max_length: int) -> tuple[list[int], int]:
    """Token ids of prompt + completion and the number of prompt tokens (no loss on those).

    The prompt is encoded exactly as lm-eval's ``hf`` backend encodes a context (the tokenizer's
    default special tokens, e.g. a BOS where the model uses one) and the completion on its own, so
    training sees the token boundary that generation starts from.
    """
    prompt, completion = render_example(pair.source, pair.target, pair.src_lang, pair.tgt_lang)
    prompt_ids = tokenizer(prompt)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    ids = prompt_ids + completion_ids
    n_prompt = len(prompt_ids)
    if len(ids) > max_length:  # keep the completion; cut the prompt from the left
        cut = len(ids) - max_length
        ids, n_prompt = ids[cut:], max(n_prompt - cut, 0)
    return ids, n_prompt


def n_loss_tokens_of(example: tuple[list[int], int]) -> int:
    """Tokens that carry loss: the completion (the first token is never predicted)."""
    ids, n_prompt = example
    return len(ids) - max(n_prompt, 1)


def encode_all(tokenizer, pairs: Sequence[Pair], max_length: int) -> list[tuple[list[int], int]]:
    return [encode_pair(tokenizer, p, max_length) for p in pairs]


# --- the batch schedule -------------------------------------------------------------------------

def plan_batches(n_examples: int, lengths: Sequence[int], *, batch_size: int, steps: int, seed: int,
                 order: list[int] | None, bucketing: bool, bucket_window: int = 50,
                 order_window: int = 0) -> list[list[int]]:
    """``steps`` batches of example indices.

    Given order: consecutive chunks of it, cycled for further epochs. With ``order_window`` > 1 the
    order is kept at the granularity of windows of that many batches: inside a window, examples are
    sorted by length, cut into batches, and those batches shuffled (seeded), so a curriculum costs
    little padding while window k is still trained before window k + 1. Shuffled: a new permutation
    per epoch (seeded); with bucketing, windows of ``bucket_window`` batches are sorted by length and
    cut into batches, then the batches of the epoch are shuffled, so padding is small but
    neighbouring steps still see mixed lengths.
    """
    rng = random.Random(seed)

    def by_length(epoch: list[int], window_batches: int) -> list[list[int]]:
        window = batch_size * window_batches
        chunks = [sorted(epoch[i:i + window], key=lambda j: lengths[j]) for i in range(0, len(epoch), window)]
        return [c[i:i + batch_size] for c in chunks for i in range(0, len(c), batch_size)]

    batches: list[list[int]] = []
    while len(batches) < steps:
        if order is not None:
            epoch = list(order)
            if order_window > 1:
                epoch_batches = []
                for i in range(0, len(epoch), batch_size * order_window):
                    window = by_length(epoch[i:i + batch_size * order_window], order_window)
                    rng.shuffle(window)
                    epoch_batches.extend(window)
            else:
                epoch_batches = [epoch[i:i + batch_size] for i in range(0, len(epoch), batch_size)]
        else:
            epoch = list(range(n_examples))
            rng.shuffle(epoch)
            if bucketing:
                epoch_batches = by_length(epoch, bucket_window)
                rng.shuffle(epoch_batches)
            else:
                epoch_batches = [epoch[i:i + batch_size] for i in range(0, len(epoch), batch_size)]
        batches.extend(epoch_batches)
    return batches[:steps]


def steps_per_epoch(n_examples: int, batch_size: int) -> int:
    return -(-n_examples // batch_size)


def collate(examples: Sequence[tuple[list[int], int]], pad_id: int, pad_to_multiple_of: int = 8):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (-100 on prompt and padding)."""
    import torch

    longest = max(len(ids) for ids, _ in examples)
    width = -(-longest // pad_to_multiple_of) * pad_to_multiple_of if pad_to_multiple_of > 1 else longest
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (ids, n_prompt) in enumerate(examples):
        n = len(ids)
        input_ids[row, :n] = torch.tensor(ids)
        labels[row, n_prompt:n] = torch.tensor(ids[n_prompt:])
        mask[row, :n] = 1
    return input_ids, mask, labels


def chain_hash(previous: str, ids: Sequence[str]) -> str:
    """Order hash, one link per step: equal hashes mean the same ids in the same steps and order."""
    return hashlib.sha256((previous + "\n" + json.dumps(list(ids))).encode("utf-8")).hexdigest()


def order_hash(batches: Sequence[Sequence[str]]) -> str:
    """The hash the training card records for the ids consumed, batch by batch."""
    digest = ""
    for ids in batches:
        digest = chain_hash(digest, ids)
    return digest
