"""OpenAI-compatible HTTP endpoints: hosted GPT-3.5/4-class APIs, ``vllm serve``, any compatible server.

Built on the official ``openai`` client (``AsyncOpenAI``), which brings the base URL, the request
timeout, and retries with exponential backoff and jitter (0.5 s doubling up to 8 s, honouring
``Retry-After``) on connection errors, timeouts, 408/409/429 and 5xx answers. We add a concurrency
limit (an ``asyncio.Semaphore``) and turn whatever still fails into a recorded failure with a clear
reason, so one bad request never loses a batch.

Two modes:

* ``completions`` (default; ``vllm serve``, base models): the prompt is exactly
  :func:`regurg_bench.prompt.render_prompt`, ``stop=["\\n"]``, greedy (``temperature=0``).
* ``chat`` (chat-only APIs): one user message, an instruction followed by the same rendered prompt;
  the first non-empty line of the reply is the target (a leading ``Spanish:`` echo is removed).

The API key is read from the environment variable named by ``api_key_env`` (default
``OPENAI_API_KEY``) and never enters signatures or logs. Servers that need no key (``vllm serve``
without ``--api-key``) get the placeholder ``EMPTY`` when the variable is unset.

``launch_vllm``: start a real ``vllm serve`` of a local checkpoint on loopback for this generator
(:mod:`regurg_bench.generation.vllm_server`) and stop it in :meth:`close`. ``model`` is then the served
name, and the checkpoint (a folder or an embedded model name such as ``smollm2-135m-instruct``) and its
content hash enter the signature instead of the ephemeral URL.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any, Literal

from regurg_bench.corpora.base import language_name
from regurg_bench.generation.base import (
    GenerationError,
    GenerationResult,
    Generator,
    GeneratorSignature,
    first_line,
    library_versions,
    register_generator,
)
from regurg_bench.prompt import PROMPT_TEMPLATE, STOP_SEQUENCES, render_prompt

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The chat-mode instruction; ``{prompt}`` is :func:`render_prompt`'s output.
DEFAULT_CHAT_INSTRUCTION = ("Translate the following {src_name} text into {tgt_name}. Answer with the "
                            "{tgt_name} translation only, on a single line.\n\n{prompt}")


@register_generator("openai")
class OpenAIGenerator(Generator):
    """Translate through an OpenAI-compatible endpoint.

    ``model``: the served model name. ``base_url``: default ``$OPENAI_BASE_URL`` or OpenAI's.
    ``mode``: ``completions`` or ``chat``. ``timeout``: seconds per HTTP attempt. ``max_retries``:
    retries per request after the first attempt (with backoff). ``concurrency``: requests in flight at
    most. ``model_revision``: a dated model snapshot name or other pin, recorded in the signature.
    ``extra_body``: extra JSON fields for the server (e.g. vLLM's ``{"top_k": 1}``).
    """

    deterministic = False  # temperature 0 is not bit-reproducible on most hosted APIs

    def __init__(self, model: str, *, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 mode: Literal["completions", "chat"] = "completions", max_tokens: int = 256,
                 temperature: float = 0.0, seed: int | None = None, timeout: float = 60.0,
                 max_retries: int = 4, concurrency: int = 8, chat_instruction: str = DEFAULT_CHAT_INSTRUCTION,
                 system_prompt: str | None = None, model_revision: str | None = None,
                 extra_body: dict[str, Any] | None = None, launch_vllm: dict[str, Any] | None = None) -> None:
        if mode not in ("completions", "chat"):
            raise ValueError(f"mode must be 'completions' or 'chat', not {mode!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.model = model
        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")
        self.api_key_env = api_key_env
        self.mode = mode
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.seed = seed
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.concurrency = int(concurrency)
        self.chat_instruction = chat_instruction
        self.system_prompt = system_prompt
        self.model_revision = model_revision
        self.extra_body = dict(extra_body or {})
        self.launch_vllm = dict(launch_vllm) if launch_vllm else None
        self._server = None
        if self.launch_vllm is not None:
            if "checkpoint" not in self.launch_vllm:
                raise ValueError("launch_vllm needs 'checkpoint' (a local folder or an embedded model name)")
            self.base_url = "launched:vllm-serve"  # replaced by the real loopback URL once started

    def _launched_checkpoint(self):
        from pathlib import Path

        from regurg_bench.training.trainer import resolve_model_spec

        spec = str(self.launch_vllm["checkpoint"])
        path = resolve_model_spec(spec)
        if path is None or not (Path(path) / "config.json").is_file():
            raise GenerationError(f"launch_vllm.checkpoint {spec!r} is not a local checkpoint folder or an "
                                  f"embedded model name")
        return Path(path).resolve()

    def _ensure_server(self) -> None:
        if self.launch_vllm is None or self._server is not None:
            return
        from regurg_bench.generation.vllm_server import VLLMServer

        options = {k: v for k, v in self.launch_vllm.items() if k != "checkpoint"}
        self._server = VLLMServer(self._launched_checkpoint(), served_name=self.model, options=options).start()
        self.base_url = self._server.base_url

    def close(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            server.stop()
            self.base_url = "launched:vllm-serve"

    def signature(self) -> GeneratorSignature:
        template = PROMPT_TEMPLATE if self.mode == "completions" else self.chat_instruction.replace(
            "{prompt}", PROMPT_TEMPLATE)
        decoding: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.mode == "completions":
            decoding["stop"] = list(STOP_SEQUENCES)
        if self.seed is not None:
            decoding["seed"] = self.seed
        revision, launched = self.model_revision, {}
        if self.launch_vllm is not None:
            from regurg_bench.generation.transformers_backend import checkpoint_fingerprint

            path = self._launched_checkpoint()
            revision = revision or checkpoint_fingerprint(path)
            launched = {"launch_vllm": {k: v for k, v in self.launch_vllm.items() if k != "checkpoint"}
                        | {"checkpoint": str(path)}, "vllm": library_versions("vllm")["vllm"]}
        return GeneratorSignature(
            kind=self.kind, model=self.model, revision=revision, prompt_template=template,
            decoding=decoding,
            options={"mode": self.mode, "base_url": "launched:vllm-serve" if self.launch_vllm else self.base_url,
                     "system_prompt": self.system_prompt,
                     "extra_body": self.extra_body, "postprocess": "first_nonempty_line+strip"},
            info=library_versions("openai") | {"concurrency": self.concurrency, "timeout": self.timeout,
                                               "max_retries": self.max_retries, "api_key_env": self.api_key_env}
            | launched,
        )

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.base_url == OPENAI_DEFAULT_BASE_URL:
            raise GenerationError(f"set the environment variable {self.api_key_env} to your API key "
                                  f"(or point base_url at a server that needs none)")
        return "EMPTY"

    # -- generation ----------------------------------------------------------------------------

    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        try:
            import openai  # noqa: F401
        except ImportError as err:
            raise GenerationError("the openai generator needs the openai package: pip install openai") from err
        self._ensure_server()
        coro_args = (sources, src_lang, tgt_lang, self._api_key())
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._generate_all(*coro_args))
        # Called from inside an event loop (a notebook): run ours in a thread.
        box: dict[str, Any] = {}

        def runner() -> None:
            try:
                box["out"] = asyncio.run(self._generate_all(*coro_args))
            except BaseException as err:  # re-raised in the caller's thread
                box["err"] = err

        thread = threading.Thread(target=runner)
        thread.start()
        thread.join()
        if "err" in box:
            raise box["err"]
        return box["out"]

    async def _generate_all(self, sources: list[str], src_lang: str, tgt_lang: str,
                            api_key: str) -> list[GenerationResult]:
        from openai import AsyncOpenAI

        # A client per call: its connection pool is bound to this event loop.
        client = AsyncOpenAI(api_key=api_key, base_url=self.base_url, timeout=self.timeout,
                             max_retries=self.max_retries)
        limit = asyncio.Semaphore(self.concurrency)
        try:
            return list(await asyncio.gather(*(self._one(client, limit, s, src_lang, tgt_lang) for s in sources)))
        finally:
            await client.close()

    async def _one(self, client, limit: asyncio.Semaphore, source: str, src_lang: str,
                   tgt_lang: str) -> GenerationResult:
        import openai

        prompt = render_prompt(source, src_lang, tgt_lang)
        extra: dict[str, Any] = {}
        if self.seed is not None:
            extra["seed"] = self.seed
        if self.extra_body:
            extra["extra_body"] = self.extra_body
        attempts = self.max_retries + 1
        try:
            async with limit:
                if self.mode == "completions":
                    resp = await client.completions.create(
                        model=self.model, prompt=prompt, max_tokens=self.max_tokens,
                        temperature=self.temperature, stop=list(STOP_SEQUENCES), **extra)
                    text = first_line(resp.choices[0].text or "") if resp.choices else ""
                else:
                    content = self.chat_instruction.format(src_name=language_name(src_lang),
                                                           tgt_name=language_name(tgt_lang), prompt=prompt)
                    messages = ([{"role": "system", "content": self.system_prompt}] if self.system_prompt
                                else []) + [{"role": "user", "content": content}]
                    resp = await client.chat.completions.create(
                        model=self.model, messages=messages, max_tokens=self.max_tokens,
                        temperature=self.temperature, **extra)
                    reply = resp.choices[0].message.content if resp.choices else None
                    text = _chat_target(reply or "", language_name(tgt_lang))
        except openai.APITimeoutError:
            return GenerationResult.failure(f"timeout: no answer within {self.timeout:g} s "
                                            f"({attempts} attempt(s))")
        except openai.APIStatusError as err:
            return GenerationResult.failure(f"HTTP {err.status_code} after {attempts} attempt(s): "
                                            f"{_short(_error_message(err))}")
        except openai.APIConnectionError as err:
            return GenerationResult.failure(f"connection error after {attempts} attempt(s): "
                                            f"{_short(str(err.__cause__ or err))}")
        except openai.APIError as err:  # malformed answers and the like
            return GenerationResult.failure(f"API error: {_short(str(err))}")
        usage = getattr(resp, "usage", None)
        n_tokens = getattr(usage, "completion_tokens", None) if usage is not None else None
        if not text:
            finish = resp.choices[0].finish_reason if resp.choices else "no choices"
            return GenerationResult.empty(f"empty completion (finish_reason={finish})", n_tokens=n_tokens)
        return GenerationResult.success(text, n_tokens=n_tokens)


def _chat_target(reply: str, tgt_name: str) -> str:
    """First non-empty line of a chat reply, without an echoed ``Spanish:`` label."""
    for line in reply.splitlines():
        line = line.strip()
        if line:
            label = f"{tgt_name}:"
            return line[len(label):].strip() if line.lower().startswith(label.lower()) else line
    return ""


def _error_message(err) -> str:
    """The server's own error message (OpenAI's ``{"error": {"message": ...}}``), else the client's."""
    body = getattr(err, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(err, "message", err))


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."
