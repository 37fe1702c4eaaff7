"""The YAML config of ``regurg-bench run`` (pydantic, unknown keys and bad values are errors naming the key).

Top-level keys: ``name``, ``build`` (a full :class:`~regurg_bench.builders.config.BuildConfig`:
corpus/direction, size, generators, mixes, fractions), ``train`` (TrainConfig overrides shared by
every student: base_model, max_steps, batch_size, lr, precision, ...), ``seeds``, ``eval`` (backend
hf|vllm, tasks, limit, max_gen_toks, batch size), ``mitigations`` (M1-M4), ``scoring``, ``collapse`` (degradation across generations; off by default).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from regurg_bench.builders.config import BuildConfig, ConfigError, read_yaml_mapping, validate_config
from regurg_bench.hashing import config_hash
from regurg_bench.scoring.bootstrap import DEFAULT_RESAMPLES, MAX_RESAMPLES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: TrainConfig fields the protocol sets per student; a config may not override them.
PROTOCOL_OWNED_TRAIN_FIELDS = frozenset({"split", "out", "seed", "curriculum", "forget", "progress"})


class EvalConfig(_Strict):
    backend: Literal["hf", "vllm"] = "hf"
    #: lm-eval tasks; default: ``regurg_mt_<src>-<tgt>`` of the built split's direction.
    tasks: list[str] | None = None
    limit: int | None = Field(200, gt=0)  # test sentences per task; None = all
    #: the task's own setting (256): a lower cap truncates long outputs and moves TER
    max_gen_toks: int = Field(256, gt=0)
    batch_size: int = Field(32, gt=0)
    dtype: str = "float32"
    num_fewshot: int | None = Field(None, ge=0)
    metadata: dict[str, Any] | None = None  # e.g. for regurg_mt_custom
    #: how LoRA students (train.method: lora) are evaluated: ``merged``, the merged checkpoint (train.merge_lora;
    #: one vLLM engine per student), or ``adapter``, the base model with the student's adapter (vllm backend:
    #: one engine per base for the whole run, a LoRARequest per student). The two give different fp32 bits
    #: (x·W + x·A·B against x·(W + A·B)), so the path is part of each evaluation's key.
    lora: Literal["merged", "adapter"] = "merged"


def _mitigations_model() -> type[BaseModel]:
    """``mitigations:``: ``generators`` plus one key per registered mitigation (its own config model)."""
    from pydantic import create_model

    from regurg_bench.protocol.mitigations import all_mitigations

    fields: dict[str, Any] = {
        #: generators whose REGURG split the per-generator mitigations (M1, M3, M4) mitigate (None: every one)
        "generators": (list[str] | None, None)}
    fields |= {m.key: (m.settings_type, m.settings_default) for m in all_mitigations()}
    return create_model("Mitigations", __base__=_Strict, __doc__="The mitigations (one key per registered "
                        "mitigation, see regurg_bench.protocol.mitigations).", **fields)


Mitigations = _mitigations_model()


class ResourcesConfig(_Strict):
    """What each student's training and evaluation asks of the executor (``--executor ray`` schedules on it;
    the local executor runs one step at a time). Not part of the config hash: it changes where, not what."""

    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)


class ScoringConfig(_Strict):
    metrics: list[Literal["bleu", "chrf", "ter"]] = ["bleu", "chrf", "ter"]
    resamples: int = Field(DEFAULT_RESAMPLES, ge=10, le=MAX_RESAMPLES)
    level: float = Field(0.95, gt=0.5, lt=1.0)
    seed: int = 0


class CollapseConfig(_Strict):
    """Degradation across generations (``regurg_bench.protocol.collapse``): generation 0 is the REAL
    student; the student of generation k writes the targets of generation k+1 for the same sources;
    ``replace`` trains on those targets only, ``accumulate`` on the real pairs plus every generated set
    so far, ``accumulate_equal`` on a seeded subsample of that pool as large as the real split."""

    generations: int = Field(3, ge=1, le=10)  # G: generations after the real one
    modes: list[Literal["replace", "accumulate", "accumulate_equal"]] = Field(
        default_factory=lambda: ["replace", "accumulate", "accumulate_equal"], min_length=1)
    #: greedy decoding of the training sources by each generation's student (weak students loop: a cap)
    max_new_tokens: int = Field(128, gt=0)
    batch_size: int = Field(64, gt=0)
    #: diagnostics of each generation's targets against the human ones (registry names)
    diagnostics: list[str] = Field(default_factory=lambda: ["reference", "length_ratio", "copy", "language",
                                                            "diversity", "repetition"])
    #: the vocabulary's tail: word types seen at most this often in the human targets; its head: at least
    tail_max_count: int = Field(2, ge=1)
    head_min_count: int = Field(10, ge=2)

    @field_validator("modes")
    @classmethod
    def _unique_modes(cls, modes: list[str]) -> list[str]:
        if len(set(modes)) != len(modes):
            raise ValueError(f"modes must be distinct, got {modes}")
        return modes

    @field_validator("diagnostics")
    @classmethod
    def _known_diagnostics(cls, names: list[str]) -> list[str]:
        from regurg_bench.diagnostics import DIAGNOSTICS

        unknown = sorted(set(names) - set(DIAGNOSTICS))
        if unknown:
            raise ValueError(f"unknown diagnostics {unknown}; known: {sorted(DIAGNOSTICS)}")
        return names

    @model_validator(mode="after")
    def _head_above_tail(self) -> CollapseConfig:
        if self.head_min_count <= self.tail_max_count:
            raise ValueError(f"head_min_count ({self.head_min_count}) must exceed tail_max_count "
                             f"({self.tail_max_count})")
        return self


class ProtocolConfig(_Strict):
    name: str = "default"
    build: BuildConfig = BuildConfig()
    train: dict[str, Any] = Field(default_factory=dict)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    eval: EvalConfig = EvalConfig()
    mitigations: Mitigations = Mitigations()  # type: ignore[valid-type]
    scoring: ScoringConfig = ScoringConfig()
    resources: ResourcesConfig = ResourcesConfig()
    #: degradation across generations (replace vs accumulate); None = not run (and not in the hash)
    collapse: CollapseConfig | None = None

    @field_validator("train")
    @classmethod
    def _train_fields(cls, overrides: dict[str, Any]) -> dict[str, Any]:
        from regurg_bench.training.config import TrainConfig, train_config_problems

        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown train keys {unknown} (TrainConfig fields: {sorted(known)})")
        owned = sorted(set(overrides) & PROTOCOL_OWNED_TRAIN_FIELDS)
        if owned:
            raise ValueError(f"train keys {owned} are set by the protocol per student")
        # the typed model `regurg-bench train` uses: type errors surface now, not after the build
        problems = train_config_problems({"split": "x", "out": "x", **overrides}, prefix="train.")
        if problems:
            raise ValueError("; ".join(problems))
        return overrides

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be distinct, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _mitigated_generators_exist(self) -> ProtocolConfig:
        unknown = sorted(set(self.mitigations.generators or []) - set(self.build.generators))
        if unknown:
            raise ValueError(f"mitigations.generators names {unknown}, which build.generators does not define "
                             f"(defined: {sorted(self.build.generators)})")
        return self

    def resolved(self) -> dict[str, Any]:
        """Settings that the config leaves to the machine, as this machine resolves them. They change
        numbers (bf16 autocast and fp32 train different students), so they enter the config hash and
        every student's key: one hash never stands for two sets of numbers."""
        from regurg_bench.models.base_models import BASE_MODELS
        from regurg_bench.training.trainer import resolved_precision

        # base models built from a recipe: a changed recipe is another model, so another run
        named = {str(self.train.get("base_model", ""))} | {str(g.options.get("checkpoint", ""))
                                                          for g in self.build.generators.values()}
        recipes = {n: BASE_MODELS[n].digest() for n in sorted(named & set(BASE_MODELS))}
        return {"train_precision": resolved_precision(self.train.get("precision", "auto")),
                **({"base_model_recipes": recipes} if recipes else {})}

    def mitigated_generators(self) -> list[str]:
        return list(self.mitigations.generators or self.build.generators)

    def config_hash(self, resolved: dict[str, Any] | None = None) -> str:
        """sha256 of the config and the resolved settings (this machine's, or the ``resolved`` a run recorded).
        Left out: ``resources`` (they change where, not what) and an unset ``collapse`` section (configs
        without it keep the hashes they always had)."""
        config = self.model_dump(mode="json", exclude={"resources"})
        if config.get("collapse") is None:
            config.pop("collapse", None)
        if config["eval"].get("lora") == "merged":  # the only path before eval.lora existed: hashes unchanged
            config["eval"].pop("lora")
        return config_hash({"config": config, "resolved": self.resolved() if resolved is None else resolved})

    def with_overrides(self, **changes: Any) -> ProtocolConfig:
        data = self.model_dump(mode="json")
        for dotted, value in changes.items():
            node = data
            *parents, leaf = dotted.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return _validate(data, "<overrides>")


def config_problems(cfg: ProtocolConfig) -> list[str]:
    """What the schema cannot see, checked before any work starts (each problem names its key): the
    corpus spec resolves, every generator kind exists and its options type-check, every base model
    (``train.base_model``, a teacher's ``checkpoint``) is one the trainer can load."""
    from regurg_bench.corpora.base import CorpusError
    from regurg_bench.corpora.spec import corpus_from_spec
    from regurg_bench.generation.base import generator_option_problems
    from regurg_bench.training.config import base_model_problem

    problems: list[str] = []
    b = cfg.build
    try:
        corpus_from_spec(b.corpus, b.src_lang, b.tgt_lang, **b.corpus_options)
    except (CorpusError, KeyError, ValueError, TypeError, OSError) as err:
        problems.append(f"build.corpus: {b.corpus!r} does not resolve: {err}")
    for name, gen in b.generators.items():
        problems += [f"build.generators.{name}.{p}" for p in generator_option_problems(gen.kind, dict(gen.options))]
        if gen.kind == "teacher" and isinstance(gen.options.get("checkpoint"), str):
            bad = base_model_problem(gen.options["checkpoint"])
            if bad:
                problems.append(f"build.generators.{name}.options.checkpoint: {bad}")
    base = cfg.train.get("base_model", "scratch:tiny")
    bad = base_model_problem(str(base))
    if bad:
        problems.append(f"train.base_model: {bad}")
    if cfg.eval.lora == "adapter" and (cfg.eval.backend != "vllm" or cfg.train.get("method") != "lora"):
        problems.append("eval.lora: 'adapter' evaluates LoRA students (train.method: lora) on the vllm backend "
                        f"(here train.method {cfg.train.get('method', 'full')!r}, eval.backend {cfg.eval.backend!r})")
    return problems


def check_config(cfg: ProtocolConfig, where: str = "config") -> ProtocolConfig:
    """``cfg`` if :func:`config_problems` finds nothing, else a :class:`ConfigError` listing every problem."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return cfg


def _validate(raw: dict[str, Any], where: str) -> ProtocolConfig:
    return validate_config(ProtocolConfig, raw, where)


def load_protocol_config(path: str | Path | None) -> ProtocolConfig:
    """Load and validate a YAML config (``None``: the embedded default)."""
    if path is None:
        return default_protocol_config()
    return _validate(read_yaml_mapping(path), str(path))


PRESETS_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    return path


def default_protocol_config() -> ProtocolConfig:
    """The embedded default (``presets/default.yaml``): en->es Bible, human vs Apertium, tiny
    from-scratch students, sized for <= 10 minutes on 2 CPU cores (see the report's stage timings)."""
    return load_protocol_config(preset_path("default"))
