"""Mitigations as plugins: one module per mitigation, registered by name, in the order the protocol runs them.

A mitigation (:class:`Mitigation`) brings its config model (the key under ``mitigations:`` in the protocol
YAML), the data steps it derives from the built splits, the students it adds per seed, and the text of
the claims its conditions test. The protocol's config, runner, dry run, report and the leaderboard's
verifier all find mitigations here, so adding one is one new module plus one test (see CONTRIBUTING.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from regurg_bench.registry import Registry

if TYPE_CHECKING:
    from regurg_bench.protocol.config import ProtocolConfig
    from regurg_bench.protocol.plan import Student
    from regurg_bench.protocol.steps import Step


class Mitigation:
    """Base class. ``key``: the config key; ``settings``: its config type and default; ``claims``: the
    condition kinds it trains -> the claim each tests (R > 0 against its REGURG baseline)."""

    key: ClassVar[str]
    label: ClassVar[str]  # "M1" ...
    #: the run order: data are derived and students trained in increasing ``order`` (M4 needs M3's or M1's data)
    order: ClassVar[int]
    settings_type: ClassVar[Any]
    settings_default: ClassVar[Any]
    claims: ClassVar[dict[str, str]]
    #: True: applied to each mitigated generator's REGURG split; False: once per seed (M2)
    per_generator: ClassVar[bool] = True
    #: True: its students continue another student (``Student.base_student``, M4); with ``eval.lora: adapter``
    #: each has a base model (and a vLLM engine) of its own, so they are evaluated last
    continues_student: ClassVar[bool] = False

    def settings(self, cfg: ProtocolConfig) -> Any:
        return getattr(cfg.mitigations, self.key)

    def enabled(self, cfg: ProtocolConfig) -> bool:
        s = self.settings(cfg)
        return bool(s if isinstance(s, bool) else s.enabled)

    def planned_conditions(self, cfg: ProtocolConfig, generator: str | None) -> list[str]:
        """The conditions it adds, before any data exist (the dry run and the leaderboard's rules)."""
        raise NotImplementedError

    def planned_data(self, cfg: ProtocolConfig) -> list[str]:
        """The names of its data steps, before any data exist (the dry run)."""
        raise NotImplementedError

    def data_steps(self, cfg: ProtocolConfig, out: Path, derived: dict[str, Any], notes: list[str]) -> list[Step]:
        """The steps deriving its data from ``out/splits`` (``derived``: the outputs of earlier mitigations)."""
        return []

    def data_waves(self, cfg: ProtocolConfig, out: Path, derived: dict[str, Any],
                   notes: list[str]) -> Iterator[list[Step]]:
        """Its data steps in waves: the runner finishes one wave (and adds its outputs to ``derived``) before
        asking for the next, so a later step may be keyed by an earlier one's files (M3: held-out build first)."""
        yield self.data_steps(cfg, out, derived, notes)

    def students(self, cfg: ProtocolConfig, splits: Path, derived: dict[str, Any], seed: int,
                 generator: str | None) -> list[Student]:
        raise NotImplementedError


#: The shipped mitigations, imported on the registry's first lookup (each imports this package for its base
#: class and its steps from the runner's modules, so this package never imports them: no import cycle).
#: A user's own register through REGURG_BENCH_PLUGINS, see regurg_bench.registry.
SHIPPED = tuple(f"regurg_bench.protocol.mitigations.{name}"
                for name in ("detector", "multigen", "quality", "unlearning"))

#: The registry (regurg_bench.registry): name (the config key) -> class, in the protocol's order.
MITIGATIONS: Registry[Mitigation] = Registry("mitigation", attribute="key", modules=SHIPPED)
register = MITIGATIONS.register()  # class decorator; the name is the class's ``key``


def all_mitigations() -> list[Mitigation]:
    return sorted((MITIGATIONS[name]() for name in MITIGATIONS), key=lambda m: m.order)


def get_mitigation(key: str) -> Mitigation:
    """The mitigation configured under ``key`` (UnknownNameError, with "did you mean", if none)."""
    return MITIGATIONS[key]()


def enabled_mitigations(cfg: ProtocolConfig) -> list[Mitigation]:
    return [m for m in all_mitigations() if m.enabled(cfg)]


def mitigation_claims() -> dict[str, str]:
    """Every mitigation condition kind -> its claim text."""
    return {kind: text for m in all_mitigations() for kind, text in m.claims.items()}
