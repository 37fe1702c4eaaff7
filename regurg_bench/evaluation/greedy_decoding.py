"""Greedy decoding of small Llama-style models with the arithmetic of ``model.generate``, faster.

``lm_eval --model hf`` generates one batch at a time with ``model.generate``: the whole batch keeps
decoding until its last row stops (a looping row keeps 15 finished ones busy up to 256 tokens), every
step pays transformers' per-call overhead, and the DynamicCache re-copies the KV cache each step. For a
1.56M-parameter student that overhead is almost all of the time.

:class:`GreedyBatchDecoder` produces the same tokens (up to each row's stop) with less work:

* **the same batches**: lm-eval's batches (composition and left padding) are kept; each batch's prompt
  is processed by ``model.generate`` itself (one new token), so the prompt's KV cache and first token
  are the reference's by construction;
* **several batches decode together**: one decoding step runs the token-wise layers (norms, linear
  layers, rotary embedding) on the rows of every active batch at once, and attention per batch, on
  that batch's own keys (same length and mask as in ``model.generate``);
* **finished rows leave**: a row leaves the token-wise layers once it emitted EOS or its decoded text
  contains a stop sequence (lm-eval cuts the text there, so later tokens never reach the output); it
  leaves attention too, once the batch's KV cache can shrink to a layout that computes every live row
  on the thread that computed it in ``model.generate`` (:class:`_Batch`, :func:`thread_slots`);
* **preallocated KV cache**: keys and values are written in place, no re-copy per step.

Why the outputs stay identical: every operation on a row is the one ``model.generate`` runs, on the
same values and, for attention, with the same cache length on the same thread; only the token-wise
layers see a different number of rows. A CPU GEMM does not
always give a row the same bits for every row count (MKL uses other kernels for a few rows: on a
2-thread AMD EPYC, 1-3, 5-7 and 9-11 rows differ from the rest). :func:`safe_row_counts` measures, at
start-up and on the model's own weights, the row counts whose results equal the reference's, and the
decoder pads every step to one of them. A batch whose own size is not safe cannot be reproduced
that way; it is decoded alone, at its own size, without dropping rows. The tests and
``benchmarks/eval_speed.py`` compare the text with ``lm_eval --model hf`` exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

#: generation settings that add a logits processor to greedy decoding (their neutral values).
_NEUTRAL_SETTINGS = {"repetition_penalty": (None, 1.0), "no_repeat_ngram_size": (None, 0),
                     "bad_words_ids": (None,), "min_length": (None, 0), "min_new_tokens": (None, 0),
                     "forced_bos_token_id": (None,), "forced_eos_token_id": (None,), "suppress_tokens": (None,),
                     "begin_suppress_tokens": (None,), "sequence_bias": (None,), "num_beams": (None, 1),
                     "encoder_repetition_penalty": (None, 1.0), "exponential_decay_length_penalty": (None,),
                     "renormalize_logits": (None, False), "epsilon_cutoff": (None, 0.0),
                     "eta_cutoff": (None, 0.0), "watermarking_config": (None,), "do_sample": (None, False)}


def unsupported_reason(model, extra_kwargs: dict) -> str | None:
    """Why :class:`GreedyBatchDecoder` cannot reproduce ``model.generate`` here, or None."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "llama" or type(model).__name__ != "LlamaForCausalLM":
        return f"model type {getattr(config, 'model_type', None)!r} (only LlamaForCausalLM is reproduced)"
    if config._attn_implementation not in ("sdpa", "eager"):
        return f"attention implementation {config._attn_implementation!r}"
    if getattr(config, "rope_parameters", {}).get("rope_type", "default") != "default":
        return "a non-default rotary embedding"
    unknown = set(extra_kwargs) - {"do_sample", "temperature", "top_p", "top_k"}
    if unknown:
        return f"generation arguments {sorted(unknown)}"
    if extra_kwargs.get("do_sample"):
        return "sampling"
    gen = model.generation_config
    for name, neutral in _NEUTRAL_SETTINGS.items():
        if getattr(gen, name, None) not in neutral:
            return f"generation_config.{name}={getattr(gen, name)!r}"
    return None


def _linears(model) -> list[torch.nn.Linear]:
    layer = model.model.layers[0]
    a, m = layer.self_attn, layer.mlp
    return [a.q_proj, a.k_proj, a.v_proj, a.o_proj, m.gate_proj, m.up_proj, m.down_proj, model.lm_head]


#: safe_row_counts per (linear layers' shapes and dtypes, largest, threads, seed), for this process
_SAFE_ROWS: dict[tuple, list[int]] = {}


@torch.inference_mode()
def safe_row_counts(model, largest: int, seed: int = 0) -> list[int]:
    """Row counts ``m <= largest`` at which every linear layer of ``model`` gives each row exactly the
    bits it gets in a batch of ``largest`` rows (and in the reversed order: a row's place does not matter).

    Measured on random inputs with the model's weights, under the current thread settings, once per process
    for each shape of model: which GEMM kernel (and so which summation order) a row count gets depends on
    the shapes, the dtype and the thread count, not on the weights' values (the 27 default students share
    one measurement; ~0.3 s each before).
    """
    key = (tuple((lin.in_features, lin.out_features, lin.weight.dtype, lin.bias is not None)
                 for lin in _linears(model)), largest, torch.get_num_threads(), seed)
    if key not in _SAFE_ROWS:
        _SAFE_ROWS[key] = _measure_safe_row_counts(model, largest, seed)
    return list(_SAFE_ROWS[key])


def _measure_safe_row_counts(model, largest: int, seed: int) -> list[int]:
    gen = torch.Generator().manual_seed(seed)
    safe = []
    checks = []
    for lin in _linears(model):
        x = torch.randn(largest, lin.in_features, generator=gen, dtype=lin.weight.dtype)
        checks.append((lin, x, lin(x), lin(x.flip(0)).flip(0)))
    for m in range(1, largest + 1):
        if all(torch.equal(ref, back) and torch.equal(lin(x[:m]), ref[:m]) and torch.equal(lin(x[-m:]), ref[-m:])
               for lin, x, ref, back in checks):
            safe.append(m)
    return safe


@dataclass
class _Batch:
    """One of lm-eval's batches while it decodes: its rows, KV cache and attention mask.

    The KV cache holds *slots*: at first one per row, in order. The CPU attention kernel
    (``_scaled_dot_product_flash_attention_for_cpu``) splits the batch's rows x heads into one contiguous
    chunk per thread, and a row's bits depend on which thread computed it (each thread's scratch buffer
    sits at another offset; measured: torch 2.13, 2 threads, every cache length but a few). So when rows
    finish, the cache is compacted to :func:`thread_slots`: the live rows, each in the chunk of the thread
    that computed it in ``model.generate``'s call at the batch's full size, padded with spare slots.
    Rows the layout cannot place (a row split between two threads) keep the batch at full size.
    """

    rows: list[int]                       # index in the caller's outputs, per row of the batch
    keys: list[torch.Tensor]              # per layer (slots, heads, capacity, head_dim), filled up to `length`
    values: list[torch.Tensor]
    mask: torch.Tensor | None             # (slots, capacity) bool, None when no row is padded
    length: int                           # filled positions of the cache
    positions: torch.Tensor               # (rows,) position id of the next input token
    tokens: torch.Tensor                  # (rows,) next input token
    live: torch.Tensor                    # indices of the rows still decoding
    heads: int = 1                        # attention heads (the kernel's work items are rows x heads)
    alone: bool = False                   # decoded at its own size (its size is not a safe row count)
    steps: int = 0                        # tokens generated so far (the first one by model.generate)
    #: the cache slot of each computed row (in ``computed()`` order); None: slot i holds row i, all computed
    live_slots: torch.Tensor | None = None

    def computed(self) -> torch.Tensor:
        """Rows that go through the model this step: the live ones, or all of an ``alone`` batch."""
        return torch.arange(len(self.rows)) if self.alone else self.live

    def compact(self) -> bool:
        """Shrink the cache to :func:`thread_slots` of the live rows, when that is smaller than it is now."""
        layout = thread_slots(self.live.tolist(), len(self.rows), self.heads, torch.get_num_threads())
        if layout is None or len(layout) > 0.75 * self.keys[0].shape[0]:  # copy the cache only for a real saving
            return False
        now = self.live_slots_of_rows()
        take = torch.tensor([now[r] if r >= 0 else 0 for r in layout])  # a spare slot copies any slot
        self.keys = [_gather_filled(k, take, self.length) for k in self.keys]
        self.values = [_gather_filled(v, take, self.length) for v in self.values]
        self.mask = None if self.mask is None else self.mask[take]
        slot_of = {r: s for s, r in enumerate(layout) if r >= 0}
        self.live_slots = torch.tensor([slot_of[r] for r in self.live.tolist()])
        # no spare slot: the live rows (ascending) fill the slots in order, as the decoding step assumes
        assert len(layout) > len(self.live) or self.live_slots.tolist() == list(range(len(layout)))
        return True

    def live_slots_of_rows(self) -> dict[int, int]:
        """Row -> its cache slot, for the live rows."""
        if self.live_slots is None:
            return {r: r for r in self.live.tolist()}
        return dict(zip(self.live.tolist(), self.live_slots.tolist(), strict=True))


def _gather_filled(cache: torch.Tensor, take: torch.Tensor, length: int) -> torch.Tensor:
    """``cache[take]``, copying only the first ``length`` positions (the rest is written before it is read)."""
    out = cache.new_zeros((len(take), *cache.shape[1:]))
    out[:, :, :length] = cache[take, :, :length]
    return out


def thread_slots(live: list[int], rows: int, heads: int, threads: int) -> list[int] | None:
    """A cache layout (row per slot, -1 for a spare slot) in which the attention kernel computes each of
    the ``live`` rows on the thread it used for that row in a call over all ``rows``; None when a live row
    was split between two threads there.

    ATen's ``parallel_for`` gives each of ``min(threads, items)`` threads one contiguous chunk of
    ``ceil(items / threads)`` of the ``rows x heads`` items, in order. With ``m`` slots per thread and
    ``threads x m`` slots, thread ``t`` computes exactly slots ``[t m, (t + 1) m)``.
    """
    items = rows * heads
    used = min(threads, items)
    chunk = -(-items // used)
    by_thread: dict[int, list[int]] = {}
    for r in live:
        first, last = (r * heads) // chunk, (r * heads + heads - 1) // chunk
        if first != last:
            return None
        by_thread.setdefault(first, []).append(r)
    m = max(len(rs) for rs in by_thread.values())
    layout = [-1] * (threads * m)
    for t, rs in by_thread.items():
        layout[t * m:t * m + len(rs)] = rs
    return layout


@dataclass
class GreedyBatchDecoder:
    """Greedy continuation of lm-eval's batches, identical to ``model.generate`` (module docstring).

    ``is_finished(row_tokens)`` says whether a row's generated tokens already fix its output (a stop
    sequence in the decoded text; EOS is checked here); ``max_new_tokens`` is lm-eval's ``max_gen_toks``.
    """

    model: torch.nn.Module
    pad_token_id: int
    eos_token_ids: set[int]
    is_finished: Callable[[list[int]], bool]
    max_new_tokens: int
    max_rows: int = 128                   # live rows decoded together (several of lm-eval's batches)
    safe: list[int] = field(default_factory=list)
    outputs: list[list[int]] = field(default_factory=list)
    #: what the last run did: decoding steps, most batches decoded together, rows that stopped before
    #: max_new_tokens, batches decoded alone (their size is not a safe row count), caches compacted
    stats: dict[str, int] = field(default_factory=dict)
    #: keep every row's logits of every step (tests compare them bit for bit with model.generate's)
    record_logits: bool = False
    logits: list[list[torch.Tensor]] = field(default_factory=list)

    def run(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[list[list[int]]]:
        """Generated tokens of every row of every ``(input_ids, attention_mask)`` batch (left-padded)."""
        if not self.safe:
            self.safe = safe_row_counts(self.model, max(self.max_rows, max(len(b[0]) for b in batches)))
        offsets, total = [], 0
        for ids, _ in batches:
            offsets.append(total)
            total += len(ids)
        self.outputs = [[] for _ in range(total)]
        self.logits = [[] for _ in range(total)]
        self.stats = {"steps": 0, "most_batches": 0, "retired_early": 0, "alone_batches": 0, "compactions": 0}
        pending, active = list(range(len(batches))), []
        while pending or active:
            while pending and self._room(active, len(batches[pending[0]][0])):
                i = pending.pop(0)
                started = self._start(*batches[i], offset=offsets[i])
                if started is not None:
                    active.append(started)
            active = self._step(active)
        return [self.outputs[o:o + len(ids)] for o, (ids, _) in zip(offsets, batches, strict=True)]

    def _room(self, active: list[_Batch], rows: int) -> bool:
        if not active:
            return True
        if any(b.alone for b in active) or rows not in self.safe:
            return False
        return sum(len(b.live) for b in active) + rows <= self.max_rows

    # -- prompt: model.generate itself, one token -------------------------------------------------------

    @torch.inference_mode()
    def _start(self, ids: torch.Tensor, mask: torch.Tensor, offset: int) -> _Batch | None:
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False,
                                  pad_token_id=self.pad_token_id, use_cache=True, return_dict_in_generate=True,
                                  output_logits=self.record_logits)
        first = out.sequences[:, -1]
        rows = list(range(offset, offset + len(ids)))
        for i, (r, t) in enumerate(zip(rows, first.tolist(), strict=True)):
            self.outputs[r].append(t)
            if self.record_logits:
                self.logits[r].append(out.logits[0][i].clone())
        capacity = ids.shape[1] + self.max_new_tokens
        keys, values = [], []
        for layer in range(len(self.model.model.layers)):
            for cached, into in zip(_layer_kv(_cache_of(out), layer), (keys, values), strict=True):
                buffer = cached.new_zeros((*cached.shape[:2], capacity, cached.shape[3]))
                buffer[:, :, :cached.shape[2]] = cached
                into.append(buffer)
        full_mask = None
        if not bool(mask.all()):  # model.generate passes a mask to attention only when a row is padded
            full_mask = torch.ones((len(ids), capacity), dtype=torch.bool)
            full_mask[:, :ids.shape[1]] = mask.bool()
        positions = mask.long().sum(-1)  # generate's position ids are cumsum(mask) - 1: the next is the count
        batch = _Batch(rows, keys, values, full_mask, ids.shape[1], positions, first.clone(),
                       live=torch.arange(len(ids)), heads=keys[0].shape[1], alone=len(ids) not in self.safe, steps=1)
        self.stats["alone_batches"] += batch.alone
        return self._retire(batch)

    # -- one decoding step over every active batch --------------------------------------------------------

    @torch.inference_mode()
    def _step(self, active: list[_Batch]) -> list[_Batch]:
        if not active:
            return active
        self.stats["steps"] += 1
        self.stats["most_batches"] = max(self.stats["most_batches"], len(active))
        model = self.model
        computed = [b.computed() for b in active]
        n = sum(len(c) for c in computed)
        size = n if active[0].alone else next(m for m in self.safe if m >= n)
        tokens = torch.cat([b.tokens[c] for b, c in zip(active, computed, strict=True)])
        positions = torch.cat([b.positions[c] for b, c in zip(active, computed, strict=True)])
        if size > n:  # pad to a safe row count: the extra rows are computed and thrown away
            tokens = torch.cat([tokens, tokens.new_full((size - n,), self.pad_token_id)])
            positions = torch.cat([positions, positions.new_zeros(size - n)])
        hidden = model.model.embed_tokens(tokens[:, None])
        cos_sin = model.model.rotary_emb(hidden, positions[:, None])
        for index, layer in enumerate(model.model.layers):
            hidden = hidden + self._attention(layer, index, layer.input_layernorm(hidden), cos_sin, active, computed)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        logits = model.lm_head(model.model.norm(hidden))[:n, -1, :].to(copy=True, dtype=torch.float32)
        chosen = logits.argmax(-1)
        out, start = [], 0
        for b, c in zip(active, computed, strict=True):
            new = chosen[start:start + len(c)]
            b.tokens[c] = new
            b.positions[c] += 1
            start += len(c)
            b.length += 1
            b.steps += 1
            new_of = {i: k for k, i in enumerate(c.tolist())}
            for i in b.live.tolist():
                self.outputs[b.rows[i]].append(int(new[new_of[i]]))
                if self.record_logits:
                    self.logits[b.rows[i]].append(logits[start - len(c) + new_of[i]].clone())
            kept = self._retire(b)
            if kept is not None:
                out.append(kept)
        return out

    def _attention(self, layer, index: int, normed: torch.Tensor, cos_sin, active: list[_Batch],
                   computed: list[torch.Tensor]) -> torch.Tensor:
        from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb, eager_attention_forward

        attn = layer.self_attn
        shape = (normed.shape[0], 1, -1, attn.head_dim)
        q = attn.q_proj(normed).view(shape).transpose(1, 2)
        k = attn.k_proj(normed).view(shape).transpose(1, 2)
        v = attn.v_proj(normed).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *cos_sin)
        interface = ALL_ATTENTION_FUNCTIONS.get_interface(attn.config._attn_implementation, eager_attention_forward)
        # transformers' sdpa_attention_forward for one query token without grouped KV heads makes exactly this
        # call (no mask change, is_causal False); calling it directly skips ~10 us of wrapper per call
        direct = attn.config._attn_implementation == "sdpa" and getattr(attn, "num_key_value_groups", 1) == 1
        parts, start = [], 0
        for b, c in zip(active, computed, strict=True):
            end, at = start + len(c), b.length
            slots = c if b.live_slots is None else b.live_slots
            everyone = len(c) == b.keys[index].shape[0]  # every slot, in order (see _Batch.compact)
            if everyone:
                b.keys[index][:, :, at:at + 1] = k[start:end]
                b.values[index][:, :, at:at + 1] = v[start:end]
                query = q[start:end]
            else:  # finished rows or spare slots ride along in attention (their result is dropped)
                b.keys[index][slots, :, at:at + 1] = k[start:end]
                b.values[index][slots, :, at:at + 1] = v[start:end]
                query = q.new_zeros((b.keys[index].shape[0], *q.shape[1:]))
                query[slots] = q[start:end]
            mask = None if b.mask is None else b.mask[:, None, None, :at + 1]
            if direct:
                o = torch.nn.functional.scaled_dot_product_attention(
                    query, b.keys[index][:, :, :at + 1], b.values[index][:, :, :at + 1], attn_mask=mask,
                    dropout_p=0.0, scale=attn.scaling, is_causal=False).transpose(1, 2)
            else:
                o, _ = interface(attn, query, b.keys[index][:, :, :at + 1], b.values[index][:, :, :at + 1],
                                 mask, dropout=0.0, scaling=attn.scaling)
            parts.append(o if everyone else o[slots])
            start = end
        if start < normed.shape[0]:  # the padding rows of a safe row count: any values do
            parts.append(q.new_zeros((normed.shape[0] - start, 1, q.shape[1], q.shape[3])))
        joined = torch.cat(parts).reshape(normed.shape[0], 1, -1).contiguous()
        return attn.o_proj(joined)

    def _retire(self, b: _Batch) -> _Batch | None:
        """Stop the rows whose output is fixed; None when none is left."""
        live = [i for i in b.live.tolist() if b.steps < self.max_new_tokens and not self._done(self.outputs[b.rows[i]])]
        if b.steps < self.max_new_tokens:
            self.stats["retired_early"] += len(b.live) - len(live)
        if not live:
            return None
        if b.alone:  # its rows keep their shape (finished ones stop recording), as in model.generate
            b.live = torch.tensor(live)
            return b
        if len(live) < len(b.live):
            slot_of = b.live_slots_of_rows()
            b.live = torch.tensor(live)
            if b.live_slots is not None:
                b.live_slots = torch.tensor([slot_of[r] for r in live])
            if b.compact():
                self.stats["compactions"] += 1
        return b

    def _done(self, tokens: list[int]) -> bool:
        # after EOS model.generate writes padding, which decodes to nothing: the output is fixed
        return tokens[-1] in self.eos_token_ids or self.is_finished(tokens)


def _cache_of(out):
    """The KV cache of a ``generate`` output (``cache`` in transformers 5.x, ``past_key_values`` before)."""
    cache = out.get("cache")
    return cache if cache is not None else out.get("past_key_values")


def _layer_kv(cache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys and values of one layer of a transformers cache (DynamicCache of transformers 4.5x or 5.x)."""
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]
