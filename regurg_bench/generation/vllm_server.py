"""``vllm serve`` on the loopback interface, started and stopped by the caller: the real
OpenAI-compatible server behind the ``openai`` generator when its ``launch_vllm`` option is set (the
``paper-smoke`` preset, tests).

The server runs ``python -m vllm.entrypoints.cli.main serve MODEL`` with the current interpreter (the
environment that has vLLM), on ``127.0.0.1`` and a free port, in its own process group; ``start()``
waits until ``GET /v1/models`` answers (vLLM on CPU takes ~30-90 s to load), ``stop()`` sends SIGTERM
to the group, then SIGKILL after a grace period. The server's output goes to a log file whose tail is
quoted when start-up fails.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any


class VLLMServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class VLLMServer:
    """One ``vllm serve`` process. ``model``: a local checkpoint folder or a hub id; ``served_name``:
    the name clients send (default: ``model``); ``options``: ``vllm serve`` flags as a mapping
    (``{"dtype": "float32", "max_model_len": 512, "enforce_eager": True}`` -> ``--dtype float32
    --max-model-len 512 --enforce-eager``)."""

    def __init__(self, model: str | os.PathLike, *, served_name: str | None = None, port: int | None = None,
                 startup_timeout: float = 600.0, options: dict[str, Any] | None = None,
                 python: str | None = None) -> None:
        self.model = str(model)
        self.served_name = served_name or self.model
        self.port = port
        self.startup_timeout = float(startup_timeout)
        self.options = dict(options or {})
        self.python = python or sys.executable
        self._proc: subprocess.Popen | None = None
        self._log: Path | None = None

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise VLLMServerError("the server is not started")
        return f"http://127.0.0.1:{self.port}/v1"

    def command(self) -> list[str]:
        cmd = [self.python, "-m", "vllm.entrypoints.cli.main", "serve", self.model, "--host", "127.0.0.1",
               "--port", str(self.port), "--served-model-name", self.served_name]
        for key, value in self.options.items():
            flag = "--" + key.replace("_", "-")
            if value is True:
                cmd.append(flag)
            elif value not in (False, None):
                cmd += [flag, json.dumps(value) if isinstance(value, dict) else str(value)]
        return cmd

    def start(self) -> VLLMServer:
        if self._proc is not None:
            return self
        self.port = self.port or free_port()
        fd, log = tempfile.mkstemp(prefix="vllm-serve-", suffix=".log")
        self._log = Path(log)
        from regurg_bench.generation.vllm_backend import child_environment, cpu_engine_defaults

        cpu_engine_defaults()  # on CPU: a fixed KV cache, no inductor compile (see there); inherited below
        env = child_environment()
        with os.fdopen(fd, "w") as handle:
            self._proc = subprocess.Popen(self.command(), stdout=handle, stderr=subprocess.STDOUT, env=env,
                                          start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            rc = self._proc.poll()
            if rc is not None:
                self._proc = None
                raise VLLMServerError(f"vllm serve {self.model} exited with code {rc} during start-up; "
                                      f"its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(1.0)
        self.stop()
        raise VLLMServerError(f"vllm serve {self.model} did not answer within {self.startup_timeout:g} s; "
                              f"its log ends:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")[-chars:] if self._log else ""
        except OSError:
            return ""

    def stop(self, grace: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass
        if self._log is not None:
            self._log.unlink(missing_ok=True)

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
