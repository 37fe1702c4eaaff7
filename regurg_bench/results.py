"""The typed results of a run: the model of ``results.json`` (schema ``regurg-bench/results/v1``) that scoring
produces, ``results.json`` serialises, and the report, ``compare``, ``submit``, the verifier and the leaderboard read.

It sits below the protocol and the leaderboard (it imports neither), so both can use it without an import
cycle; :mod:`regurg_bench.leaderboard.schema` re-exports its names. Every block is **lenient**: keys a reader
does not know are ignored, so results written by older (or newer) code still load; the fields a reader needs
are typed. A ``results.json`` written by the protocol round-trips: ``RunResults.model_validate(data)`` then
:meth:`RunResults.to_data` gives the same JSON back (tests/test_results.py checks the committed ones).

The value types a leaderboard entry shares with a run (:class:`Score`, :class:`Effect`, the name and hash
types) live here too: a run's score *is* a :class:`Score`, read in lenient mode (:class:`RunScore`).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_serializer,
    model_validator,
)

from regurg_bench.scoring.bootstrap import MAX_RESAMPLES  # one bound for configs and entries

RESULTS_SCHEMA = "regurg-bench/results/v1"

NAME_CHARS = "A-Za-z0-9._-"
_NAME_RE = re.compile(rf"^[{NAME_CHARS}]{{1,100}}$")
HASH_PATTERN = r"^sha256:[0-9a-f]{64}$"
#: A base model as the protocol records it: ``scratch:tiny``, a hub id, a path; no control characters.
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f]{1,300}$"


class SubmissionError(ValueError):
    """A submission or an entry file that cannot go on a leaderboard; the message says why and where."""


def name_problem(name: str) -> str | None:
    """Why ``name`` is not a safe leaderboard/model/entry name (None when it is)."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        return f"use 1-100 characters from {NAME_CHARS} (no '/', no spaces)"
    if ".." in name or name.startswith("."):
        return "no '..' and no leading '.'"
    return None


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is safe as a file or folder name, else raise :class:`SubmissionError`."""
    problem = name_problem(name)
    if problem:
        raise SubmissionError(f"{kind} name {name!r} is not allowed: {problem}")
    return name


def _safe_name(value: str) -> str:
    problem = name_problem(value)
    if problem:
        raise ValueError(f"{value!r} is not a safe name: {problem}")
    return value


#: A name that may become part of a path or a page: validated as a dict key too.
Name = Annotated[str, AfterValidator(_safe_name)]
Metric = Literal["bleu", "chrf", "chrf++", "ter"]
Hash = Annotated[str, StringConstraints(pattern=HASH_PATTERN)]
Text = Annotated[str, StringConstraints(pattern=_TEXT_PATTERN)]
Status = Literal["ok", "not_significant", "no_gap", "undefined"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True)


class Score(_Strict):
    """A condition's corpus score (mean over seeds) with its bootstrap interval and the per-seed scores.

    One type, read in one of two validation modes. Strict, this class: a leaderboard entry's score, where an
    unknown key is an error. Lenient, its subclass :class:`RunScore`: the same score as ``results.json``
    records it, where keys this reader does not need are ignored. The lenient mode is a subclass rather than a
    second model so that the fields and their bounds exist once (a run's score *is* a ``Score``, and
    :meth:`RunScore.strict` is its entry form); the subclass changes ``extra`` only, and adds the one field a
    run records and an entry does not.
    """

    score: float
    ci_low: float
    ci_high: float
    per_seed: list[float] = Field(min_length=1)


class Effect(_Strict):
    """Degradation D or recovery R, as :meth:`regurg_bench.scoring.effects.Effect.to_dict` writes it."""

    kind: Literal["degradation", "recovery"]
    metric: Metric
    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    note: str = ""
    level: float = Field(gt=0.0, lt=1.0)
    p_value: float | None = Field(None, ge=0.0, le=1.0)
    p_adjusted: float | None = Field(None, ge=0.0, le=1.0)
    #: what the run could have detected (see regurg_bench.scoring.power); absent in entries made before
    detectable: float | None = Field(None, ge=0.0)
    seeds_needed: int | None = Field(None, ge=1)
    seed_share: float | None = Field(None, ge=0.0, le=1.0)

    @model_serializer(mode="wrap")
    def _omit_absent_detectability(self, handler: Any) -> dict[str, Any]:
        """Left out when absent (not written as null): entries made before these fields keep their bytes and ids."""
        data = handler(self)
        for key in ("detectable", "seeds_needed", "seed_share"):
            if data.get(key, "") is None:
                del data[key]
        return data


class WeightFingerprints(_Strict):
    """The weights a run actually used (:mod:`regurg_bench.protocol.fingerprints`): ``sha256:`` content hashes
    of the base model, of every generator checkpoint and of every student; null where there is no checkpoint
    (a ``scratch:`` base, Apertium)."""

    base_model: Hash | None = None
    generators: dict[Name, Hash | None] = {}
    students: dict[Name, Hash | None] = {}



# ---------------------------------------------------------------------- the run's results (lenient)
class _Lenient(BaseModel):
    """A results.json block: keys this reader does not know are ignored (older and newer runs still load)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, populate_by_name=True)


class RunScore(Score):
    """:class:`Score` in lenient mode (``results.json``): unknown keys ignored, as :class:`_Lenient`'s."""

    model_config = _Lenient.model_config
    #: lm-eval's own per-seed scores, which the verifier checks against the recomputed ones (a run's only)
    lm_eval_reported: list[float] | None = None

    def strict(self) -> Score:
        """The same score in strict mode, as an entry keeps it (without the run's ``lm_eval_reported``)."""
        return Score.model_validate(self.model_dump(include=set(Score.model_fields)))


class RunEffect(Effect):
    """:class:`Effect` in lenient mode, as results.json records it: also the paired differences (``kind``
    ``difference``), and written back as read (a recorded null stays a null)."""

    model_config = _Lenient.model_config
    kind: Literal["degradation", "recovery", "difference"]

    @model_serializer(mode="wrap")
    def _omit_absent_detectability(self, handler: Any) -> dict[str, Any]:
        """As read: results.json is not an entry, whose bytes must not change when a field is added."""
        return handler(self)


class RunVerdict(RunEffect):
    """One metric of a claim: the pooled effect, its verdict, each seed's own verdict and its robustness
    (:mod:`regurg_bench.scoring.verdicts`); the seed fields are absent in results scored before them."""

    verdict: str
    per_seed_verdicts: list[str] | None = None
    seeds_holding: int | None = None
    seeds_agreeing: int | None = None
    n_seeds: int | None = None
    effective_seeds: int | None = None
    robustness: Literal["robust", "fragile", "inconclusive"] | None = None

    def robustness_or_default(self) -> str:
        """The recorded robustness; results written before it existed: a decided verdict counts as fragile."""
        if self.robustness:
            return self.robustness
        return "fragile" if self.verdict in ("holds", "contradicted") else "inconclusive"

    def agreeing(self) -> int:
        """Seeds that agree with the pooled verdict alone (results before ``seeds_agreeing``: those holding)."""
        return self.seeds_agreeing if self.seeds_agreeing is not None else (self.seeds_holding or 0)


class StatVerdict(_Lenient):
    """A descriptive (point) comparison of a generated training split with the human one."""

    label: str
    better: str
    real: float
    generated: float
    verdict: str


class RunClaim(_Lenient):
    """One paper claim as tested: where (task, condition, generator) and its verdict per metric (or, for the
    mechanism claims, per diagnostic statistic; or one ``verdict`` when it was not tested)."""

    claim: str
    text: str
    task: str | None = None
    condition: str | None = None
    generator: str | None = None
    per_metric: dict[Metric, RunVerdict] = {}
    per_stat: dict[str, StatVerdict] | None = None
    verdict: str | None = None


class RunStudent(_Lenient):
    condition: Name
    seed: int
    key: str | None = None
    model_id: str | None = None
    split: str | None = None
    curriculum: str | None = None
    forget: str | None = None
    base_student: str | None = None
    base_model: Text | None = None
    samples: dict[Name, str]
    results_file: str


class RunScoring(_Lenient):
    method: str | None = None
    resamples: int = Field(gt=0, le=MAX_RESAMPLES)
    level: float = Field(gt=0.0, lt=1.0)
    seed: int
    correction: str | None = None


class RunCondition(_Lenient):
    kind: Name
    generator: Name | None = None
    size: int | None = None  # size-ladder rungs
    seeds: list[int] = Field(min_length=1)
    #: distinct replicates (seeds with identical outputs count once); absent in results before it
    effective_seeds: int | None = None

    def distinct_seeds(self) -> int:
        return self.effective_seeds if self.effective_seeds is not None else len(self.seeds)


class RunCheck(_Lenient):
    n_test_sentences: int = Field(gt=0)
    max_abs_diff_vs_lm_eval: float | None = None
    equal_to_lm_eval: bool | None = None


class RunData(_Lenient):
    build_config_hash: Hash | None = None
    corpus: dict[str, Any] | None = None
    matched_pairs: int | None = None
    generators: dict[str, Any] | None = None
    split_fingerprints: dict[Name, str] | None = None


class RunFingerprint(_Lenient):
    pairs: int
    fingerprint: str


class DiagnosticStat(_Lenient):
    label: str
    family: str
    better: str | None = None  # "higher", "lower", or None where neither is better
    values: dict[str, float | None]


class RunDiagnostics(_Lenient):
    """The diagnostics of the training splits (:mod:`regurg_bench.diagnostics`), as the run recorded them."""

    file: str | None = None
    plot: str | None = None
    n_pairs: int | None = None
    token_budget: int | None = None
    notes: dict[str, Any] = {}
    stats: dict[str, DiagnosticStat] = {}


class RunCollapseStudent(_Lenient):
    """A collapse student as results.json records it: where its logged samples are (relative to the run)."""

    mode: str | None = None
    generation: int | None = None
    seed: int | None = None
    key: str | None = None
    model_id: str | None = None
    split: str | None = None
    samples: dict[Name, str]


class TailGap(_Lenient):
    """One generation of the tail claim: the share of the human head types kept minus that of the tail types,
    with its interval over word types (none, and no kept shares, under too few types). Read tolerantly, like
    the rest of the claim: what the entry carries is checked by its strict model."""

    generation: int
    estimate: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    tail_kept: float | None = None
    head_kept: float | None = None
    tail_types: int | None = None
    head_types: int | None = None


class CollapseClaim(_Lenient):
    """A claim of the collapse study: growth or boundedness with a verdict per metric (``per_metric``,
    :mod:`regurg_bench.scoring.generations`), or the tail claim with one verdict from its interval at every
    generation (:mod:`regurg_bench.protocol.collapse_tail`) and each seed's own verdict."""

    claim: str
    mode: str
    task: str | None = None
    text: str
    per_metric: dict[Metric, RunVerdict] = {}
    verdict: str | None = None
    per_generation: list[TailGap] | None = None
    per_seed_verdicts: list[str] | None = None
    seeds_holding: int | None = None
    n_seeds: int | None = None
    level: float | None = None
    resamples: int | None = None
    interval_over: str | None = None


class SeedStats(_Lenient):
    #: condition (``real``, ``<mode>_gen<k>``) -> statistic -> value (``pairs``, diversity, errors, kept shares)
    stats: dict[str, dict[str, float | int | None]]


class CollapseDiagnostics(_Lenient):
    """Each generation's training targets against the human ones, per seed, at one token budget, and the human
    tail and head word types the kept shares count (:func:`regurg_bench.protocol.collapse.diagnostics_per_generation`)."""

    per_seed: dict[str, SeedStats]
    token_budget: int | None = None
    tail_types: int
    head_types: int
    tail_max_count: int
    head_min_count: int
    diagnostics: list[str] = []


class RunCollapse(_Lenient):
    """The optional ``collapse`` section (degradation across generations, see
    :mod:`regurg_bench.protocol.collapse`): the score of every generation and D_k per mode. A run without
    the section is a complete submission; a run with it must carry the whole curve."""

    generations: int = Field(ge=1)
    modes: list[Literal["replace", "accumulate", "accumulate_equal"]] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    #: task -> condition (gen0, <mode>_gen<k>) -> metric -> score
    scores: dict[Name, dict[Name, dict[Metric, RunScore]]] = Field(min_length=1)
    #: task -> mode -> generation k (as a string) -> metric -> D_k against generation 0
    degradation: dict[Name, dict[Name, dict[Name, dict[Metric, RunEffect]]]] = Field(min_length=1)
    #: the growth, boundedness and tail claims (the entry's strict models pick what they carry)
    claims: list[CollapseClaim] = []
    #: generation k's students (``<condition>-s<seed>``): their samples are what the curve is recomputed from
    students: dict[Name, RunCollapseStudent] = {}
    #: each generation's training targets against the human ones (read by the report)
    diagnostics: CollapseDiagnostics | None = None
    #: the study's settings, its conditions in order, the test-set size, the generated targets of each chain
    #: and the plots drawn (as :func:`~regurg_bench.protocol.collapse.run_collapse` writes them; read by the
    #: report only)
    settings: dict[str, Any] | None = None
    conditions: list[str] | None = None
    n_test_sentences: int | None = None
    targets: dict[str, dict[str, Any]] | None = None
    plots: list[str] | None = None

    def samples_by_student(self) -> dict[str, dict[str, str]]:
        """student -> task -> samples file (relative to the run) of every student the curve is scored from."""
        conds = ["gen0"] + [f"{m}_gen{k}" for m in self.modes for k in range(1, self.generations + 1)]
        out: dict[str, dict[str, str]] = {}
        for name in (f"{cond}-s{seed}" for cond in conds for seed in self.seeds):
            student = self.students.get(name)
            missing = [t for t in self.scores if student is None or t not in student.samples]
            if missing:
                raise SubmissionError(f"results.json: field 'collapse.students.{name}.samples': no samples file "
                                      f"for {', '.join(missing)} to recompute the collapse curve from")
            out[name] = dict(student.samples)
        return out

    @model_validator(mode="after")
    def _whole_curve(self) -> RunCollapse:
        wanted = {"gen0"} | {f"{m}_gen{k}" for m in self.modes for k in range(1, self.generations + 1)}
        for task, per in self.scores.items():
            missing = sorted(wanted - set(per))
            if missing:
                raise ValueError(f"scores.{task}: no scores for generation condition(s) {', '.join(missing)}")
        for task, per_mode in self.degradation.items():
            for m in self.modes:
                gens = set(per_mode.get(m, {}))
                missing = sorted(str(k) for k in range(1, self.generations + 1) if str(k) not in gens)
                if missing:
                    raise ValueError(f"degradation.{task}.{m}: no D_k for generation(s) {', '.join(missing)}")
        return self


class RunResults(_Lenient):
    """A run's results: ``results.json`` (schema ``regurg-bench/results/v1``), as scoring produces it.

    Provenance fields are optional here so that a missing one gets its own message (see
    :mod:`regurg_bench.leaderboard.provenance`) rather than a generic schema error; so are the blocks older
    runs did not record (claims' seed verdicts, fingerprints, diagnostics, stage times).
    """

    schema_id: Literal["regurg-bench/results/v1"] = Field(alias="schema")
    name: Text
    config_hash: Hash
    config: dict[str, Any]
    tasks: list[Name] = Field(min_length=1)
    lm_eval_version: str | None = None
    task_versions: dict[Name, float | int | str] = {}
    sacrebleu_signatures: dict[str, str] = {}
    test_set_fingerprints: dict[Name, RunFingerprint] = {}
    scoring: RunScoring
    resolved: dict[str, Any] | None = None
    data: RunData = RunData()
    conditions: dict[Name, RunCondition]
    #: the order the protocol scored the conditions in (the bootstrap draws seeds in that order)
    condition_order: list[Name] | None = None
    students: dict[Name, RunStudent] = Field(min_length=1)
    scores: dict[Name, dict[Name, dict[Metric, RunScore]]]
    #: task -> regurg condition -> metric -> D
    degradation: dict[Name, dict[Name, dict[Metric, RunEffect]]]
    #: task -> mitigated condition -> regurg baseline -> metric -> R
    recovery: dict[Name, dict[Name, dict[Name, dict[Metric, RunEffect]]]]
    #: task -> better condition -> worse condition -> metric -> paired difference (fraction of real, ladder)
    differences: dict[Name, dict[Name, dict[Name, dict[Metric, RunEffect]]]] = {}
    claims: list[RunClaim] = []
    checks: dict[Name, RunCheck]
    eval_settings: dict[str, Any] | None = None
    diagnostics: RunDiagnostics | None = None
    #: each mitigation's data step: what it made (kept as the step recorded it)
    mitigation_data: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    plots: list[str] = []
    #: the steps executed, in order, and each stage's seconds
    steps: list[str] = []
    timings_s: dict[str, float] = {}
    #: degradation across generations (optional: runs without ``collapse:`` in their config have none)
    collapse: RunCollapse | None = None
    #: the weights actually used (optional: results scored before it was recorded have none)
    fingerprints: WeightFingerprints | None = None

    def metrics(self) -> list[str]:
        """The metrics the run scored: its config's, else those of the first scored condition."""
        metrics = (self.config.get("scoring") or {}).get("metrics")
        if metrics:
            return list(metrics)
        first = next(iter(self.scores.values()), {})
        return list(next(iter(first.values()), {}))

    def to_data(self) -> dict[str, Any]:
        """The JSON-able dict ``results.json`` holds: every field that was set, as it was read or made."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


def describe_validation_error(err: ValidationError, label: str) -> str:
    """``label: field 'a.b.c': problem`` for every error (first five), naming the field by its JSON path."""
    parts = []
    for e in err.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown field (not in the schema)"
        elif e["type"] == "literal_error" and loc in ("schema", "schema_id"):
            msg = f"{msg} (got {e.get('input')!r})"
        parts.append(f"field '{loc}': {msg}")
    more = len(err.errors()) - len(parts)
    return f"{label}: " + "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], data: Any, label: str, error: type[Exception] = SubmissionError) -> M:
    """Parsed JSON ``data`` as ``model``, or ``error`` saying what is wrong: not a JSON object, or each bad
    field by its JSON path (:func:`describe_validation_error`)."""
    if not isinstance(data, dict):
        raise error(f"{label}: not a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise error(describe_validation_error(err, label)) from None
