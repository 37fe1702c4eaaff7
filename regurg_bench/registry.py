"""One generic registry for every pluggable kind: corpus sources, generators, diagnostics, mitigations.

    GENERATORS: Registry[Generator] = Registry("generator kind", item="generator", attribute="kind",
                                               modules=("regurg_bench.generation",))

    @GENERATORS.register("apertium")          # sets ApertiumGenerator.kind = "apertium"
    class ApertiumGenerator(Generator): ...

    GENERATORS.add_lazy("vllm", "regurg_bench.generation.vllm_backend:VLLMGenerator")  # imported on first use
    gen = GENERATORS.build("apertium", round_trip="it")   # options checked against __init__ first
    GENERATORS.option_problems("apertium", {"colour": 1}) # ["options.colour: generator 'apertium' does not ..."]
    GENERATORS.help_list()                                # "apertium, openai, teacher, ..." for CLI help

Decisions, so every registry behaves the same:

* **One error type** for an unknown name, :class:`UnknownNameError`, a subclass of both ``KeyError``
  and ``ValueError`` (code written against either of the old registries keeps working); its message
  names the kind, the name, the closest registered names ("did you mean") and every registered name.
* **Names** are given to :meth:`Registry.register`, or read from the class attribute named by
  ``attribute`` when none is given; when given, the attribute is set on the class, so a class always
  knows its registry name.
* **Lazy**: ``modules`` are imported on the first lookup (their ``@register`` decorators fill the
  table), and :meth:`Registry.add_lazy` entries (``"module:attr"``) are imported only when that name is
  used. The environment variable ``REGURG_BENCH_PLUGINS`` (comma-separated module names) is imported
  too, by every registry, on its first lookup: that is how test doubles (``regurg_bench.testing``) and
  a user's own plug-ins are registered without living in the package's production registries.
* **Options** are checked against the class's typed constructor (``__init__`` parameters and their
  annotations; a pydantic model's fields) *before* anything is built: unknown, missing and ill-typed
  options are errors naming the option.
* A registry is a read-only ``Mapping[str, type]`` (``name in R``, ``R[name]``, ``sorted(R)``).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")

#: Environment variable: comma-separated modules every registry imports on its first lookup.
PLUGINS_ENV = "REGURG_BENCH_PLUGINS"


class UnknownNameError(KeyError, ValueError):
    """A name that is not registered. Both a ``KeyError`` and a ``ValueError``; ``str()`` is the plain
    message (not ``KeyError``'s quoted repr)."""

    def __init__(self, message: str, *, kind: str = "", name: str = "", known: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message, self.kind, self.name, self.known = message, kind, name, list(known)

    def __str__(self) -> str:
        return self.message


def _import(target: str) -> Any:
    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


_plugins_loaded: set[str] = set()


def load_plugins() -> None:
    """Import the modules named in ``REGURG_BENCH_PLUGINS`` (each once per process)."""
    for module in (m.strip() for m in os.environ.get(PLUGINS_ENV, "").split(",")):
        if module and module not in _plugins_loaded:
            _plugins_loaded.add(module)
            try:
                importlib.import_module(module)
            except ImportError as err:
                _plugins_loaded.discard(module)
                raise ImportError(f"{PLUGINS_ENV}: cannot import plug-in module {module!r}: {err}") from err


class Registry(Mapping[str, type], Generic[T]):
    """Name -> class table of one pluggable ``kind`` (see the module docstring)."""

    def __init__(self, kind: str, *, item: str | None = None, attribute: str | None = "name",
                 modules: Sequence[str] = ()) -> None:
        #: ``kind`` names the table in "unknown <kind> 'x'"; ``item`` one entry in option errors
        #: ("generator 'x' does not take this option"), default ``kind``.
        self.kind = kind
        self.item = item or kind
        self.attribute = attribute
        self.modules = tuple(modules)
        self._classes: dict[str, type[T]] = {}
        self._lazy: dict[str, str] = {}
        self._loading = False

    # -- filling --------------------------------------------------------------------------------
    def register(self, name: str | None = None) -> Callable[[type[T]], type[T]]:
        """Class decorator: register under ``name`` (or the class's ``attribute`` when ``name`` is None)."""

        def decorate(cls: type[T]) -> type[T]:
            key = name if name is not None else getattr(cls, self.attribute or "", None)
            if not isinstance(key, str) or not key:
                raise TypeError(f"{cls.__qualname__}: no name to register it under as a {self.kind}")
            known = self._classes.get(key)
            if known is not None and known is not cls:
                raise ValueError(f"{self.kind} {key!r} is already registered by {known.__module__}."
                                 f"{known.__qualname__}")
            if name is not None and self.attribute:
                setattr(cls, self.attribute, name)
            self._classes[key] = cls
            self._lazy.pop(key, None)
            return cls

        return decorate

    def add_lazy(self, name: str, target: str) -> None:
        """Register ``name`` as ``"package.module:ClassName"``, imported the first time ``name`` is used."""
        if name in self._classes or name in self._lazy:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._lazy[name] = target

    def _load(self) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            for module in self.modules:
                importlib.import_module(module)
            load_plugins()
        finally:
            self._loading = False

    # -- lookup ---------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted({*self._classes, *self._lazy})

    def get(self, name: str, default: Any = None) -> type[T]:  # type: ignore[override]
        """The class registered as ``name``; :class:`UnknownNameError` (with "did you mean") if none."""
        self._load()
        if name in self._classes:
            return self._classes[name]
        if name in self._lazy:
            cls = _import(self._lazy[name])
            self._classes.setdefault(name, cls)
            self._lazy.pop(name, None)
            return self._classes[name]
        raise self.unknown(name)

    def unknown(self, name: str) -> UnknownNameError:
        """The error for an unregistered ``name`` (for callers that check ``name in registry`` first)."""
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}{hint}; registered: {', '.join(known) or '(none)'}",
                                kind=self.kind, name=str(name), known=known)

    def __getitem__(self, name: str) -> type[T]:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._classes or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    # -- building -------------------------------------------------------------------------------
    def option_problems(self, name: str, options: Mapping[str, Any]) -> list[str]:
        """What is wrong with building ``name`` from ``options`` (empty when nothing): ``"kind: ..."``
        for an unknown name, else one ``"options.<key>: ..."`` line per unknown, missing or ill-typed
        option, checked against the class's typed constructor."""
        try:
            cls = self.get(name)
        except UnknownNameError as err:
            return [f"kind: {err}"]
        model, accepted = _options_model(cls)
        from pydantic import ValidationError

        try:
            model.model_validate(dict(options))
        except ValidationError as err:
            out = []
            for e in err.errors():
                key = ".".join(map(str, e["loc"]))
                if e["type"] == "extra_forbidden":
                    out.append(f"options.{key}: {self.item} {name!r} does not take this option; "
                               f"it takes: {', '.join(accepted) or 'none'}")
                elif e["type"] == "missing":
                    out.append(f"options.{key}: {self.item} {name!r} needs this option")
                else:
                    out.append(f"options.{key}: {e['msg']} (got {e.get('input')!r})")
            return out
        return []

    def build(self, name: str, /, **options: Any) -> T:
        """An instance of ``name`` built from ``options``. Unknown and missing option *names* raise
        ``ValueError`` naming what the class accepts (types are left to the class, so a ``Path`` for a
        ``str`` still works here; check types up front with :meth:`option_problems`)."""
        cls = self.get(name)
        params, takes_any = _parameters(cls)
        unknown = sorted(set(options) - set(params))
        if unknown and not takes_any:
            raise ValueError(f"{self.item} {name!r} does not take option(s) {unknown}; "
                             f"it takes: {', '.join(params) or 'none'}")
        missing = [n for n, p in params.items() if p.default is inspect.Parameter.empty and n not in options]
        if missing:
            raise ValueError(f"{self.item} {name!r} needs option(s) {missing}")
        return cls(**options)

    # -- help -----------------------------------------------------------------------------------
    def help_list(self) -> str:
        """``"a, b, c"``: the registered names for a CLI help text."""
        return ", ".join(self.names())

    def describe(self) -> list[tuple[str, str]]:
        """``[(name, first line of the class docstring)]`` for listings."""
        out = []
        for name in self.names():
            doc = inspect.getdoc(self.get(name)) or ""
            out.append((name, doc.strip().splitlines()[0] if doc.strip() else ""))
        return out


def _parameters(cls: type) -> tuple[dict[str, inspect.Parameter], bool]:
    """Named constructor parameters of ``cls`` (pydantic models: their fields) and whether it takes ``**kw``."""
    fields = getattr(cls, "model_fields", None)
    if isinstance(fields, dict):  # a pydantic model: __init__ is (**data)
        params = {n: inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY,
                                       default=inspect.Parameter.empty if f.is_required() else f.default)
                  for n, f in fields.items()}
        return params, getattr(cls, "model_config", {}).get("extra") == "allow"
    sig = inspect.signature(cls.__init__)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    params = {n: p for n, p in sig.parameters.items() if n != "self"
              and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)}
    return params, takes_any


def _options_model(cls: type) -> tuple[Any, list[str]]:
    """A strict pydantic model of ``cls``'s constructor options, and the option names it accepts."""
    from pydantic import BaseModel, ConfigDict, create_model

    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return cls, list(cls.model_fields)
    params, takes_any = _parameters(cls)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation this Python cannot resolve: check names only
        hints = {}
    spec = {n: (hints.get(n, Any), ... if p.default is inspect.Parameter.empty else p.default)
            for n, p in params.items()}
    model = create_model(f"{cls.__name__}Options", __config__=ConfigDict(
        extra="allow" if takes_any else "forbid", arbitrary_types_allowed=True), **spec)
    return model, list(spec)
