"""The generator interface: sources in, targets out, with a signature of everything that shapes them.

A :class:`Generator` turns a batch of source sentences into one :class:`GenerationResult` each: a
target text, or a recorded *empty* / *failed* outcome with its reason (never an empty string posing as
a target). Its :class:`GeneratorSignature` names the generator kind, the model and its revision, the
prompt template, the decoding parameters and the library versions that can change the output; the
signature's hash is part of every generation-cache key, so changing any of these regenerates.

Generators are small classes in a registry (``@register_generator("apertium")``), built from plain
config options with :func:`build_generator`. Backend modules import their heavy libraries (torch,
vllm, openai) only when a generator is used, so importing :mod:`regurg_bench.generation` is cheap.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from regurg_bench.registry import Registry
from regurg_bench.versions import package_versions

#: Bump when the meaning of a signature field changes (it is part of every hash).
SIGNATURE_VERSION = 1

Status = Literal["ok", "empty", "failed"]


class GenerationError(RuntimeError):
    """A generator cannot run at all (misconfigured, missing system package...). Not a per-row failure."""


class UnsupportedDirection(GenerationError, ValueError):
    """The generator cannot translate this language direction. The message lists the ones it can."""


def _canonical(value: Any) -> Any:
    """Plain JSON types with sorted keys (tuples become lists), so equal settings hash equally."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (sorted keys, no spaces, UTF-8 kept)."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class GeneratorSignature:
    """Everything that determines a generator's output for a given source and direction.

    All fields except ``info`` enter :attr:`hash`. ``info`` is provenance that must not split the cache:
    where a checkpoint lies on disk, the device, client-library versions that cannot change a result,
    the number of GPUs used for tensor parallelism.
    """

    kind: str
    model: str | None = None
    #: Model revision: a content hash for local checkpoints, a package version for Apertium data.
    revision: str | None = None
    prompt_template: str | None = None
    decoding: Mapping[str, Any] = field(default_factory=dict)
    #: Versions of the libraries that can change the output (e.g. torch, transformers, vllm).
    versions: Mapping[str, str] = field(default_factory=dict)
    #: Other output-relevant settings (dtype, post-processing, API mode...).
    options: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)

    def hashed_dict(self) -> dict[str, Any]:
        """The fields that enter the hash, as plain JSON types."""
        return _canonical({"signature_version": SIGNATURE_VERSION, "kind": self.kind, "model": self.model,
                           "revision": self.revision, "prompt_template": self.prompt_template,
                           "decoding": self.decoding, "versions": self.versions, "options": self.options})

    @property
    def hash(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of :meth:`hashed_dict` (stable across runs/machines)."""
        return "sha256:" + hashlib.sha256(canonical_json(self.hashed_dict()).encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """All fields plus ``hash`` (what manifests store)."""
        return self.hashed_dict() | {"info": _canonical(self.info), "hash": self.hash}

    def short(self) -> str:
        """A one-line, sacrebleu-style rendering: ``kind:apertium|model:eng-spa|...|hash:1a2b3c4d``."""
        parts = [f"kind:{self.kind}"]
        if self.model:
            parts.append(f"model:{self.model}")
        if self.revision:
            parts.append(f"rev:{self.revision[:19]}")
        parts += [f"{k}:{v}" for k, v in sorted(self.decoding.items())]
        parts += [f"{k}:{v}" for k, v in sorted(self.versions.items())]
        return "|".join(parts + [f"hash:{self.hash.split(':', 1)[1][:12]}"])


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """The outcome for one source: ``status`` ``ok`` (``text`` is the target), ``empty`` (the generator
    produced nothing usable) or ``failed`` (an error; ``reason`` says which). Only ``ok`` results carry
    text; use :attr:`target` to get it, which is ``None`` otherwise.

    ``n_tokens`` is the number of generated tokens where the backend knows it (LM backends), else the
    number of whitespace-separated words. ``attempts`` counts tries of this source under this signature
    (filled in by the cache).
    """

    status: Status
    text: str | None = None
    reason: str | None = None
    n_tokens: int | None = None
    attempts: int = 1
    cached: bool = False

    def __post_init__(self) -> None:
        if self.status == "ok" and not (self.text and self.text.strip()):
            raise ValueError("an ok GenerationResult needs non-empty text; use GenerationResult.empty()")
        if self.status != "ok" and self.text is not None:
            raise ValueError("only ok results carry text")
        if self.status not in ("ok", "empty", "failed"):
            raise ValueError(f"unknown status {self.status!r}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def target(self) -> str | None:
        """The generated target, or ``None`` for an empty or failed generation."""
        return self.text if self.status == "ok" else None

    @classmethod
    def success(cls, text: str, n_tokens: int | None = None) -> GenerationResult:
        """``ok`` when ``text`` has content after stripping, else ``empty`` (reason: empty output)."""
        text = text.strip()
        if not text:
            return cls("empty", reason="the generator returned an empty string", n_tokens=n_tokens)
        return cls("ok", text=text, n_tokens=n_tokens if n_tokens is not None else len(text.split()))

    @classmethod
    def empty(cls, reason: str, n_tokens: int | None = None) -> GenerationResult:
        return cls("empty", reason=reason, n_tokens=n_tokens)

    @classmethod
    def failure(cls, reason: str) -> GenerationResult:
        return cls("failed", reason=reason)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "text": self.text, "reason": self.reason, "n_tokens": self.n_tokens,
                "attempts": self.attempts}


def first_line(text: str) -> str:
    """The target an LM completion stands for: everything before the first newline, stripped
    (the ``regurg_mt`` tasks stop at ``\\n`` the same way)."""
    return text.split("\n", 1)[0].strip()


class Generator(ABC):
    """A target generator. Subclasses set ``kind`` (via :func:`register_generator`) and implement
    :meth:`signature` and :meth:`generate`.

    ``generate`` must return exactly one result per source, in order. It records per-source problems
    (a timed-out request, an empty output) as results and raises only when nothing can work
    (:class:`GenerationError`, :class:`UnsupportedDirection`). Generators may hold heavy resources
    (a model, an engine): use them as context managers or call :meth:`close`.
    """

    kind: ClassVar[str] = "abstract"
    #: Same source -> same output (greedy LMs, Apertium). Informational; the cache does not rely on it.
    deterministic: ClassVar[bool] = True

    @abstractmethod
    def signature(self) -> GeneratorSignature:
        """What determines the output (cheap: must not load a model or start an engine)."""

    @abstractmethod
    def generate(self, sources: list[str], src_lang: str, tgt_lang: str) -> list[GenerationResult]:
        """Translate ``sources`` from ``src_lang`` into ``tgt_lang``: one result per source, in order."""

    def check_direction(self, src_lang: str, tgt_lang: str) -> None:
        """Raise :class:`UnsupportedDirection` when this generator cannot translate the direction.
        Called by the runner before any work; LM backends accept any direction."""
        return None

    def close(self) -> None:
        """Release models, engines, subprocesses. Idempotent."""
        return None

    def __enter__(self) -> Generator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        sig = self.signature()
        return f"{type(self).__name__}({sig.short()})"


# -- registry ------------------------------------------------------------------------------------

#: kind -> :class:`Generator` class. The built-in backends register on import of
#: :mod:`regurg_bench.generation`; test doubles live in :mod:`regurg_bench.testing` (plug-ins).
GENERATORS: Registry[Generator] = Registry("generator kind", item="generator", attribute="kind",
                                           modules=("regurg_bench.generation",))


def register_generator(name: str) -> Callable[[type[Generator]], type[Generator]]:
    """Class decorator: register a :class:`Generator` under ``name`` (its ``kind``)."""
    return GENERATORS.register(name)


def generator_kinds() -> list[str]:
    """The registered generator kinds."""
    return GENERATORS.names()


def build_generator(kind: str, **options: Any) -> Generator:
    """Instantiate the registered generator ``kind`` with config ``options``.

    Unknown kinds (:class:`~regurg_bench.registry.UnknownNameError`) and unknown or missing options raise
    ``ValueError`` naming what is accepted. Nothing heavy happens here: models load and engines start on
    the first :meth:`Generator.generate`.
    """
    return GENERATORS.build(kind, **options)


def generator_option_problems(kind: str, options: dict[str, Any]) -> list[str]:
    """What is wrong with ``kind`` and ``options`` (empty when nothing), checked before anything is built:
    the kind is registered, every option is one its class takes, required ones are given, and each value
    has the type the class's ``__init__`` annotates (``max_new_tokens: "64x"`` is an error, not a crash
    at the first batch)."""
    return GENERATORS.option_problems(kind, options)


def library_versions(*names: str) -> dict[str, str]:
    """``{name: version}`` of installed distributions (``"absent"`` when not installed; enters signatures)."""
    return package_versions(*names, missing="absent")
