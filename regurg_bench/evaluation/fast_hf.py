"""``lm_eval --model regurg-hf``: lm-eval's ``hf`` model with faster greedy generation, same text.

:class:`FastHFLM` is lm-eval's ``HFLM`` with one change: ``generate_until`` generates through
:class:`regurg_bench.evaluation.greedy_decoding.GreedyBatchDecoder` instead of one
``model.generate`` call per batch. Everything else is lm-eval's own code, run as is: the request
order, the batches (``batch_size``), tokenization and left padding, decoding of the continuation, the
cut at the stop sequences, the request cache and the progress bar. It does so in two passes of
``HFLM.generate_until``: the first records the batches lm-eval would generate (and generates nothing),
the decoder then continues every batch, and the second pass hands lm-eval those tokens where it
would have called ``model.generate``.

Where the decoder cannot reproduce ``model.generate`` (another architecture, sampling, a logits
processor in the generation config, ``batch_size=auto``, thinking tokens, autocast, a GPU), it says why
in the log and falls back to ``HFLM`` unchanged. Registered with lm-eval by the start-up hook
(:mod:`regurg_bench._lm_eval_hook`), so ``lm_eval --model regurg-hf`` works like ``--model hf``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from lm_eval.api.model import CacheHook
from lm_eval.models.huggingface import HFLM

from regurg_bench._lm_eval_hook import MODEL_NAME
from regurg_bench.evaluation.greedy_decoding import GreedyBatchDecoder, unsupported_reason

log = logging.getLogger(__name__)
__all__ = ["MODEL_NAME", "FastHFLM", "stop_checker"]


class FastHFLM(HFLM):
    """lm-eval's ``hf`` model whose greedy generation decodes several batches at once (module docstring).

    ``decode_rows`` (a ``--model_args`` key): rows decoded together, across lm-eval's batches.
    """

    def __init__(self, *args: Any, decode_rows: int = 128, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._decode_rows = int(decode_rows)
        self._recorded: list[tuple] | None = None
        self._replay: list[torch.Tensor] | None = None
        self._safe_rows: list[int] = []
        #: the decoder's counters, summed over this model's generate_until calls (GreedyBatchDecoder.stats)
        self.decode_stats: dict[str, int] = {}

    def _fast_unsupported(self) -> str | None:
        if self.backend != "causal":
            return f"backend {self.backend!r}"
        if self.batch_size == "auto":
            return "batch_size=auto"
        if self.think_end_token is not None:
            return "think_end_token"
        if getattr(self, "mixed_precision_dtype", None) is not None:
            return "mixed precision (autocast)"
        if self.model.device.type != "cpu":
            return f"device {self.model.device.type} (the decoder's identity is measured on CPU only)"
        return unsupported_reason(self.model, {})

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        reason = self._fast_unsupported()
        if reason is None:
            batches = self._record_batches(requests)
            reason = next((r for r in (unsupported_reason(self.model, b[4]) for b in batches) if r), None)
        if reason is not None:
            log.info("regurg-hf: generating with model.generate as lm-eval's hf does (%s)", reason)
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        self._replay = self._decode(batches)
        try:
            return super().generate_until(requests, disable_tqdm=disable_tqdm)
        finally:
            self._replay = None

    def _record_batches(self, requests: list) -> list[tuple]:
        """Run lm-eval's ``generate_until`` once, recording its batches instead of generating."""
        self._recorded, hook = [], self.cache_hook
        self.cache_hook = CacheHook(None)  # the first pass's empty texts must not reach the request cache
        try:
            super().generate_until(requests, disable_tqdm=True)
            return self._recorded
        finally:
            self._recorded, self.cache_hook = None, hook

    def _model_generate(self, context, max_length: int, stop: list[str], **generation_kwargs) -> torch.Tensor:
        if self._recorded is not None:
            mask = generation_kwargs.pop("attention_mask")
            self._recorded.append((context, mask, list(stop), max_length - context.shape[1], generation_kwargs))
            return context
        if self._replay is not None:
            return self._replay.pop(0)
        return super()._model_generate(context, max_length, stop, **generation_kwargs)

    def _decode(self, batches: list[tuple]) -> list[torch.Tensor]:
        """``context + generated tokens`` per batch, padded like ``model.generate``'s output."""
        out: list[torch.Tensor] = []
        start = 0
        while start < len(batches):  # consecutive batches with the same stop sequences and length
            end = start + 1
            while end < len(batches) and batches[end][2:4] == batches[start][2:4]:
                end += 1
            run = batches[start:end]
            decoder = self._decoder(stop=run[0][2], max_new_tokens=run[0][3])
            for (context, _mask, *_), rows in zip(run, decoder.run([(b[0], b[1]) for b in run]), strict=True):
                width = max(len(r) for r in rows)
                gen = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=context.dtype)
                for i, r in enumerate(rows):
                    gen[i, :len(r)] = torch.tensor(r, dtype=context.dtype)
                out.append(torch.cat([context, gen], dim=1))
            self._safe_rows = decoder.safe
            for key, value in decoder.stats.items():
                self.decode_stats[key] = max(self.decode_stats.get(key, 0), value) if key == "most_batches" \
                    else self.decode_stats.get(key, 0) + value
            start = end
        return out

    def _decoder(self, stop: list[str], max_new_tokens: int) -> GreedyBatchDecoder:
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [] if eos is None else [eos])
        return GreedyBatchDecoder(self.model, pad_token_id=self.tokenizer.pad_token_id, eos_token_ids=eos_ids,
                                  is_finished=stop_checker(self.tokenizer, stop), max_new_tokens=max_new_tokens,
                                  max_rows=self._decode_rows, safe=self._safe_rows)


def stop_checker(tokenizer, stop: list[str]):
    """``finished(tokens)``: the decoded text of ``tokens`` contains one of ``stop``, so lm-eval's cut
    of the text is already fixed. Called after every new token, so only the newest can complete a stop:
    a token whose own text has no last character of a stop (and is plain text: no U+FFFD of a partial
    UTF-8 sequence, not empty) cannot, and is passed without decoding. Otherwise a cheap look at the last
    few tokens, and the whole text to confirm."""
    stop = [s for s in stop if s]
    lookback = max((len(tokenizer.encode(s, add_special_tokens=False)) for s in stop), default=0) + 2
    ends = {s[-1] for s in stop}
    texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=True)
    suspects = {i for i, t in enumerate(texts) if not t or "\ufffd" in t or any(c in t for c in ends)}

    def finished(tokens: list[int]) -> bool:
        if tokens[-1] not in suspects and tokens[-1] < len(texts):
            return False
        window = tokenizer.decode(tokens[-lookback:], skip_special_tokens=True)
        if not any(s in window for s in stop):
            return False  # a stop spread over more tokens is missed here: the row just runs longer
        text = tokenizer.decode(tokens, skip_special_tokens=True)
        return any(s in text for s in stop)

    return finished
