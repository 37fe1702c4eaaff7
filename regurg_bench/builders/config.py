"""The YAML config of ``regurg-bench build``, validated with pydantic (unknown keys are errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from regurg_bench.hashing import config_hash


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GeneratorConfig(_Strict):
    """One generator: its registered ``kind`` plus the options that kind takes."""

    kind: str
    options: dict[str, Any] = Field(default_factory=dict)


class MixConfig(_Strict):
    """Ratio mixes at a fixed total size: a share of the pairs gets generated targets."""

    ratios: list[float] = [0.0, 0.25, 0.5, 0.75, 1.0]
    generators: list[str] | None = None  # default: every generator

    @field_validator("ratios")
    @classmethod
    def _unit_interval(cls, ratios: list[float]) -> list[float]:
        bad = [r for r in ratios if not 0.0 <= r <= 1.0]
        if bad:
            raise ValueError(f"ratios must lie in [0, 1], got {bad}")
        return sorted(set(ratios))


class LadderConfig(_Strict):
    """Nested size ladder (the paper adds data in steps of 1,000 pairs)."""

    step: int = Field(1000, gt=0)
    max: int | None = Field(None, gt=0)  # default: the number of sampled sources


class RecursiveConfig(_Strict):
    """Recursive generations: the model trained on generation k writes the targets of k+1."""

    generations: int = Field(2, ge=1)
    modes: list[Literal["replace", "accumulate"]] = ["replace", "accumulate"]
    #: TrainConfig overrides for every teacher, e.g. {base_model: "scratch:tiny", max_steps: 600}.
    train: dict[str, Any] = Field(default_factory=dict)
    #: options of the transformers generator each teacher writes with, e.g. {max_new_tokens: 128}.
    generate: dict[str, Any] = Field(default_factory=dict)


class BuildConfig(_Strict):
    """Everything that determines a build; its hash is part of every fingerprint."""

    name: str = "default"
    seed: int = 0
    corpus: str = "bible:en-es:train"
    src_lang: str | None = None
    tgt_lang: str | None = None
    corpus_options: dict[str, Any] = Field(default_factory=dict)
    size: int | None = Field(3000, gt=0)  # sampled sources; None = all
    generators: dict[str, GeneratorConfig] = Field(default_factory=dict)
    mixes: MixConfig | None = None
    ladder: LadderConfig | None = None
    fractions_of_real: list[float] = []
    recursive: RecursiveConfig | None = None
    batch_size: int = Field(32, gt=0)
    write_hf: bool = True

    @field_validator("fractions_of_real")
    @classmethod
    def _fractions(cls, values: list[float]) -> list[float]:
        bad = [v for v in values if not 0.0 < v <= 1.0]
        if bad:
            raise ValueError(f"fractions must lie in (0, 1], got {bad}")
        return sorted(set(values))

    @field_validator("generators")
    @classmethod
    def _generator_names(cls, gens: dict[str, GeneratorConfig]) -> dict[str, GeneratorConfig]:
        for name in gens:
            if not name.replace("-", "_").isidentifier():
                raise ValueError(f"generator name {name!r} must be letters, digits, '_' or '-'")
        return gens

    @model_validator(mode="after")
    def _mix_generators_exist(self) -> BuildConfig:
        if self.mixes and self.mixes.generators:
            unknown = sorted(set(self.mixes.generators) - set(self.generators))
            if unknown:
                raise ValueError(f"mixes.generators names unknown generators {unknown}; "
                                 f"defined: {sorted(self.generators)}")
        return self

    def config_hash(self) -> str:
        """sha256 of the canonical JSON of the validated config (defaults filled in)."""
        return config_hash(self.model_dump(mode="json"))


class ConfigError(ValueError):
    """A config file that does not validate: the message names the file and every bad key."""


M = TypeVar("M", bound=BaseModel)


def read_yaml_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML config file's top-level mapping (safe loader); errors name the file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
    return raw


def validate_config(model: type[M], raw: dict[str, Any], where: str) -> M:
    """``model.model_validate(raw)``; a ConfigError naming ``where`` and every bad key otherwise."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg'].removeprefix('Value error, ')}"
                             for e in err.errors())
        raise ConfigError(f"{where}: {problems}") from None


def load_build_config(path: str | Path | None) -> BuildConfig:
    """Load and validate a YAML config (``None``: the embedded default)."""
    if path is None:
        return default_build_config()
    return validate_config(BuildConfig, read_yaml_mapping(path), str(path))


def default_build_config() -> BuildConfig:
    """The embedded default: English->Spanish Bible verses, human vs Apertium targets."""
    return BuildConfig(
        name="default",
        corpus="bible:en-es:train",
        size=3000,
        generators={"apertium": GeneratorConfig(kind="apertium")},
        mixes=MixConfig(ratios=[0.0, 0.25, 0.5, 0.75, 1.0]),
        ladder=LadderConfig(step=1000),
        fractions_of_real=[0.25, 0.5],
    )
