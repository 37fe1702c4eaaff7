"""A minimal OpenAI-compatible HTTP server that serves a local Hugging Face causal LM for real.

It exists so the OpenAI-compatible client can be tested and benchmarked offline against a real
server on the loopback interface (the stand-in for ``vllm serve`` or a hosted API), including servers
that fail or stall. It is not a production server: greedy decoding only, one process, requests
micro-batched by a single worker thread.

Endpoints: ``POST /v1/completions`` (``prompt`` a string or a list of strings), ``POST
/v1/chat/completions`` (the tokenizer's chat template when it has one, else the message contents
joined by newlines), ``GET /v1/models``. Responses carry ``choices``, ``finish_reason`` and ``usage``
like OpenAI's.

Fault injection (for tests): ``fail_first=N`` answers the first N generation requests with HTTP
``fail_status`` (500); ``stall_seconds=S`` makes every request (or the first ``stall_first``) wait S
seconds before answering. :attr:`LoopbackServer.stats` counts requests and the peak number in flight.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class ServerStats:
    """What the server saw (read it after the client is done; guarded by :attr:`lock`)."""

    requests: int = 0
    generation_requests: int = 0
    failures_sent: int = 0
    stalls: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    batches: int = 0
    max_batch: int = 0
    #: (monotonic arrival time, prompt) of every generation request, in arrival order.
    arrivals: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class _Engine:
    """Greedy generation with a local HF causal LM, micro-batched by one worker thread."""

    def __init__(self, model_dir: str | Path, max_batch: int, batch_wait: float, stats: ServerStats,
                 num_threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from regurg_bench.generation.transformers_backend import _newline_stop

        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self._torch = torch
        self._newline = _newline_stop(self.tokenizer, "cpu")
        self.max_batch, self.batch_wait, self.stats = max_batch, batch_wait, stats
        self.num_threads = num_threads
        self.jobs: queue.Queue = queue.Queue()
        self._worker = threading.Thread(target=self._loop, name="loopback-engine", daemon=True)
        self._worker.start()

    def submit(self, prompt: str, max_tokens: int, stop: tuple[str, ...]) -> Future:
        fut: Future = Future()
        self.jobs.put((prompt, max_tokens, stop, fut))
        return fut

    def stop(self) -> None:
        self.jobs.put(None)

    def _loop(self) -> None:
        if self.num_threads:  # per calling thread for OpenMP: set it in the thread that runs the model
            self._torch.set_num_threads(self.num_threads)
        while True:
            first = self.jobs.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.max_batch:
                try:
                    job = self.jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if job is None:
                    self.jobs.put(None)
                    break
                batch.append(job)
            groups: dict[tuple, list] = {}
            for job in batch:
                groups.setdefault((job[1], job[2]), []).append(job)
            for (max_tokens, stop), jobs in groups.items():
                try:
                    outs = self._complete([j[0] for j in jobs], max_tokens, stop)
                except Exception as err:  # answer every waiting request, keep serving
                    for j in jobs:
                        j[3].set_exception(err)
                    continue
                with self.stats.lock:
                    self.stats.batches += 1
                    self.stats.max_batch = max(self.stats.max_batch, len(jobs))
                for j, out in zip(jobs, outs, strict=True):
                    j[3].set_result(out)

    def _complete(self, prompts: list[str], max_tokens: int, stop: tuple[str, ...]) -> list[dict[str, Any]]:
        tok, torch = self.tokenizer, self._torch
        enc = tok(prompts, return_tensors="pt", padding=True)
        kwargs: dict[str, Any] = {}
        if stop == ("\n",):
            kwargs["stopping_criteria"] = self._newline
        elif stop:
            kwargs |= {"stop_strings": list(stop), "tokenizer": tok}
        with torch.inference_mode():
            out = self.model.generate(**enc, do_sample=False, max_new_tokens=max_tokens,
                                      pad_token_id=tok.pad_token_id, **kwargs)
        new = out[:, enc["input_ids"].shape[1]:]
        results = []
        for i, row in enumerate(new.tolist()):
            n = len(row)
            while n and row[n - 1] == tok.pad_token_id:
                n -= 1
            text = tok.decode(row[:n], skip_special_tokens=True)
            finish = "length" if n >= max_tokens else "stop"
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            if cut >= 0:
                text, finish = text[:cut], "stop"
            results.append({"text": text, "finish_reason": finish,
                            "prompt_tokens": int(enc["attention_mask"][i].sum()), "completion_tokens": n})
        return results


class LoopbackServer:
    """Serve ``model_dir`` on ``http://host:port/v1`` in background threads (``port=0``: any free port).

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``api_key``: when set, requests must
    send ``Authorization: Bearer <api_key>`` (else 401).
    """

    def __init__(self, model_dir: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 model_name: str = "loopback-model", api_key: str | None = None, max_batch: int = 16,
                 batch_wait: float = 0.01, fail_first: int = 0, fail_status: int = 500,
                 stall_seconds: float = 0.0, stall_first: int | None = None, delay_seconds: float = 0.0,
                 num_threads: int | None = None) -> None:
        self.model_dir, self.host, self.port, self.model_name = Path(model_dir), host, port, model_name
        self.api_key = api_key
        self.max_batch, self.batch_wait = max_batch, batch_wait
        self.fail_first, self.fail_status = fail_first, fail_status
        self.stall_seconds, self.stall_first = stall_seconds, stall_first
        self.delay_seconds = delay_seconds
        self.num_threads = num_threads
        self.stats = ServerStats()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._engine: _Engine | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> LoopbackServer:
        self._engine = _Engine(self.model_dir, self.max_batch, self.batch_wait, self.stats, self.num_threads)
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer((self.host, self.port), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._engine is not None:
            self._engine.stop()
            self._engine = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    owner: LoopbackServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            pass

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        self._send(status, {"error": {"message": message, "type": kind, "code": status}})

    def do_GET(self) -> None:
        owner = self.owner
        with owner.stats.lock:
            owner.stats.requests += 1
        if self.path.rstrip("/") == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": owner.model_name, "object": "model",
                                                         "owned_by": "regurg-bench"}]})
        else:
            self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        owner, stats = self.owner, self.owner.stats
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with stats.lock:
            stats.requests += 1
        if owner.api_key is not None and self.headers.get("Authorization") != f"Bearer {owner.api_key}":
            self._error(401, "invalid API key", "authentication_error")
            return
        route = self.path.rstrip("/")
        if route not in ("/v1/completions", "/v1/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "body is not JSON")
            return
        with stats.lock:
            stats.generation_requests += 1
            number = stats.generation_requests
            stats.in_flight += 1
            stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
            stats.arrivals.append((time.monotonic(), json.dumps(body.get("prompt") or body.get("messages"))))
            fail = number <= owner.fail_first
            stall = owner.stall_seconds > 0 and (owner.stall_first is None or number <= owner.stall_first)
            if fail:
                stats.failures_sent += 1
            if stall:
                stats.stalls += 1
        try:
            if owner.delay_seconds:
                time.sleep(owner.delay_seconds)
            if stall:
                time.sleep(owner.stall_seconds)
            if fail:
                self._error(owner.fail_status, "injected failure (LoopbackServer fail_first)", "server_error")
                return
            self._generate(route, body)
        finally:
            with stats.lock:
                stats.in_flight -= 1

    def _generate(self, route: str, body: dict[str, Any]) -> None:
        owner = self.owner
        engine = owner._engine
        assert engine is not None
        if body.get("model") not in (owner.model_name, None):
            self._error(404, f"model {body.get('model')!r} is not served here (serving {owner.model_name!r})",
                        "not_found_error")
            return
        if float(body.get("temperature") or 0.0) != 0.0:
            self._error(400, "this server decodes greedily only: send temperature 0")
            return
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 16)
        stop = body.get("stop") or ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop)
        chat = route.endswith("/chat/completions")
        if chat:
            messages = body.get("messages") or []
            tok = engine.tokenizer
            if tok.chat_template:
                prompts = [tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)]
            else:
                prompts = ["\n".join(str(m.get("content", "")) for m in messages)]
        else:
            prompt = body.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
            if not prompts or not all(isinstance(p, str) for p in prompts):
                self._error(400, "prompt must be a string or a list of strings")
                return
        futures = [engine.submit(p, max_tokens, stop) for p in prompts]
        try:
            outs = [f.result() for f in futures]
        except Exception as err:
            self._error(500, f"generation failed: {err}", "server_error")
            return
        usage = {"prompt_tokens": sum(o["prompt_tokens"] for o in outs),
                 "completion_tokens": sum(o["completion_tokens"] for o in outs)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        base = {"id": f"cmpl-{uuid.uuid4().hex[:16]}", "created": int(time.time()), "model": owner.model_name,
                "usage": usage}
        if chat:
            choices = [{"index": i, "message": {"role": "assistant", "content": o["text"]},
                        "finish_reason": o["finish_reason"]} for i, o in enumerate(outs)]
            self._send(200, base | {"object": "chat.completion", "choices": choices})
        else:
            choices = [{"index": i, "text": o["text"], "finish_reason": o["finish_reason"], "logprobs": None}
                       for i, o in enumerate(outs)]
            self._send(200, base | {"object": "text_completion", "choices": choices})
