"""The leaderboard entry (schemas ``regurg-bench/leaderboard-entry/v2`` and ``/v3``) and the part of a run's
``results.json`` a submission reads, as strict pydantic models.

**Versions.** v1 entries (numbers only, no evidence) stay readable but cannot be re-checked. v2 is the
entry of a run without a ``collapse`` section; v3 is v2 plus ``collapse``, the curve of degradation across
generations (D_k per task, mode, generation and metric with its interval, the score of every generation
with its per-seed values, and the collapse claims with their verdicts, seed by seed). A run without the
section still gives a **v2** entry, byte for byte what it gave before v3 existed: committed entries keep
their bytes and content-derived ids, and a new plain entry is indistinguishable from an old one, so no
board has to be rewritten for a field it does not use (v3 with ``collapse: null`` would have given every
new plain entry other bytes than an identical committed one). The schema is therefore a function of the
content: v3 exactly when the curve is present, which the model enforces. Each entry is re-checked under
its own version (:func:`regurg_bench.leaderboard.submit.read_entry`); ``leaderboard migrate`` upgrades a v2
entry whose evidence holds a curve (a collapse run submitted before v3) and changes nothing else.

An entry is data only: numbers, strings and hashes, no timestamps (the same run gives the same bytes).
Unknown keys are errors (``extra="forbid"``), floats must be finite, and every name that can become
part of a path or of a page (leaderboard, model, entry id, task, condition) is limited to
``[A-Za-z0-9._-]``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

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

#: the entry of a run without a collapse curve (unchanged since v2, so its bytes are too)
ENTRY_SCHEMA = "regurg-bench/leaderboard-entry/v2"
#: the entry of a run with a collapse curve: v2 plus ``collapse``
CURVE_ENTRY_SCHEMA = "regurg-bench/leaderboard-entry/v3"
#: the versions an entry on a board may have (each re-checked from its evidence under its own version)
ENTRY_SCHEMAS = (ENTRY_SCHEMA, CURVE_ENTRY_SCHEMA)
#: v1 entries carried numbers only; v2 entries carry the evidence they are recomputed from
OLD_ENTRY_SCHEMAS = ("regurg-bench/leaderboard-entry/v1",)
RESULTS_SCHEMA = "regurg-bench/results/v1"

#: Size limits: a submission is read into memory, so it must be small (a full 4-direction run with
#: 1,004 test sentences has a results.json of well under 1 MB and samples files of a few MB).
MAX_RESULTS_BYTES = 8 * 1024 * 1024
MAX_SAMPLES_BYTES = 64 * 1024 * 1024
MAX_LM_EVAL_RESULTS_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BYTES = 4 * 1024 * 1024

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


class Condition(_Strict):
    kind: Name
    generator: Name | None = None
    size: int | None = Field(default=None, gt=0)  # size-ladder rungs
    seeds: list[int] = Field(min_length=1)


class Fingerprint(_Strict):
    """A test set's size and content hash, as published in task_configs/regurg_mt/test_set_fingerprints.json."""

    pairs: int = Field(gt=0)
    fingerprint: Hash


class Scoring(_Strict):
    resamples: int = Field(gt=0, le=MAX_RESAMPLES)
    level: float = Field(gt=0.0, lt=1.0)
    seed: int


class Evidence(_Strict):
    """The evidence bundle an entry is recomputed from: ``<board>/evidence/<hex>.jsonl.gz`` (see
    :mod:`regurg_bench.leaderboard.evidence`), named by the sha256 of its uncompressed bytes."""

    sha256: Hash
    files: int = Field(gt=0)
    bytes: int = Field(gt=0)


class CopyShares(_Strict):
    """Shares of a condition's hypotheses identical to their reference and to their source."""

    copied_reference: float = Field(ge=0.0, le=1.0)
    copied_source: float = Field(ge=0.0, le=1.0)


class WeightFingerprints(_Strict):
    """The weights a run actually used (:mod:`regurg_bench.protocol.fingerprints`): ``sha256:`` content hashes
    of the base model, of every generator checkpoint and of every student; null where there is no checkpoint
    (a ``scratch:`` base, Apertium)."""

    base_model: Hash | None = None
    generators: dict[Name, Hash | None] = {}
    students: dict[Name, Hash | None] = {}


# ---------------------------------------------------------------- the collapse curve of a v3 entry
CollapseMode = Literal["replace", "accumulate", "accumulate_equal"]
#: a short verdict as the collapse study writes it ("holds", "inconclusive (Holm)", ...)
Verdict = Annotated[str, StringConstraints(pattern=r"^[^\x00-\x1f\x7f]{1,120}$")]


class ClaimEffect(_Strict):
    """One metric of a growth or boundedness claim: the difference of two generations' scores with its
    interval (:func:`regurg_bench.scoring.difference`), its verdict and each seed's own verdict."""

    estimate: float | None
    ci_low: float | None
    ci_high: float | None
    status: Status
    level: float = Field(gt=0.0, lt=1.0)
    p_value: float | None = Field(None, ge=0.0, le=1.0)
    p_adjusted: float | None = Field(None, ge=0.0, le=1.0)
    verdict: Verdict
    per_seed_verdicts: list[Verdict] = []


class CurveClaim(_Strict):
    """``collapse_growth`` (generation G worse than generation 1) or ``collapse_bounded`` (accumulating beats
    replacing at generation G), per metric."""

    claim: Literal["collapse_growth", "collapse_bounded"]
    mode: CollapseMode
    task: Name
    text: Text
    per_metric: dict[Metric, ClaimEffect] = Field(min_length=1)


class GenerationInterval(_Strict):
    """One generation's estimate and interval of the tail claim."""

    generation: int = Field(ge=1)
    estimate: float | None
    ci_low: float | None
    ci_high: float | None


class TailClaim(_Strict):
    """``collapse_tail`` ("the tail disappears first"), per mode: a verdict, each seed's verdict and, where the
    run gives them, an interval per generation."""

    claim: Literal["collapse_tail"]
    mode: CollapseMode
    text: Text
    verdict: Verdict
    per_seed_verdicts: list[Verdict] = []
    per_generation: list[GenerationInterval] | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_intervals(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("per_generation", "") is None:
            del data["per_generation"]
        return data


class EntryCollapse(_Strict):
    """The collapse curve of a v3 entry, copied from the run's ``collapse`` section (keys as there)."""

    generations: int = Field(ge=1)
    modes: list[CollapseMode] = Field(min_length=1)
    seeds: list[int] = Field(min_length=1)
    #: task -> condition (gen0, <mode>_gen<k>) -> metric -> score, with the per-seed scores
    scores: dict[Name, dict[Name, dict[Metric, Score]]] = Field(min_length=1)
    #: task -> mode -> generation k (as a string) -> metric -> D_k against generation 0, with its interval
    degradation: dict[Name, dict[CollapseMode, dict[Name, dict[Metric, Effect]]]] = Field(min_length=1)
    claims: list[Annotated[CurveClaim | TailClaim, Field(discriminator="claim")]] = []

    @model_validator(mode="after")
    def _whole_curve(self) -> EntryCollapse:
        gens = {str(k) for k in range(1, self.generations + 1)}
        for task, per_mode in self.degradation.items():
            if set(per_mode) != set(self.modes) or any(set(g) != gens for g in per_mode.values()):
                raise ValueError(f"degradation.{task}: D_k must cover modes {self.modes} and generations 1..."
                                 f"{self.generations} exactly")
        return self


class LeaderboardEntry(_Strict):
    """One submitted run on one leaderboard."""

    schema_id: Literal["regurg-bench/leaderboard-entry/v2", "regurg-bench/leaderboard-entry/v3"] = Field(
        alias="schema")
    entry_id: Name
    leaderboard: Name
    model: Name
    base_model: Text
    run_name: Text
    config_hash: Hash
    build_config_hash: Hash | None = None
    seeds: list[int] = Field(min_length=1)
    tasks: list[Name] = Field(min_length=1)
    task_versions: dict[Name, Name]
    lm_eval_version: Text
    sacrebleu_signatures: dict[Metric, Text]
    test_set_fingerprints: dict[Name, Fingerprint]
    n_test_sentences: dict[Name, int]
    metrics: list[Metric] = Field(min_length=1)
    scoring: Scoring
    conditions: dict[Name, Condition]
    #: task -> condition -> metric -> score
    scores: dict[Name, dict[Name, dict[Metric, Score]]]
    #: task -> regurg condition -> metric -> D
    degradation: dict[Name, dict[Name, dict[Metric, Effect]]]
    #: task -> mitigated condition -> regurg baseline -> metric -> R
    recovery: dict[Name, dict[Name, dict[Name, dict[Metric, Effect]]]]
    #: task -> condition -> copy shares (plausibility signals)
    plausibility: dict[Name, dict[Name, CopyShares]]
    #: the plausibility rules that flag it (:mod:`.rules`): "contaminated" (exact copies of references),
    #: "near-copy", "above-real", "outlier-seed"; a flagged entry is ranked after every unflagged one
    flags: list[Literal["contaminated", "near-copy", "above-real", "outlier-seed"]] = []
    evidence: Evidence
    #: the weights actually used (optional: runs scored before it was recorded have none; an entry without
    #: it serialises exactly as before, so its bytes and content-derived id do not change)
    fingerprints: WeightFingerprints | None = None
    #: the collapse curve (v3 only; a v2 entry has none and serialises without the key)
    collapse: EntryCollapse | None = None

    @model_serializer(mode="wrap")
    def _omit_absent_fingerprints(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in ("fingerprints", "collapse"):
            if data.get(key, "") is None:
                del data[key]
        return data

    @model_validator(mode="after")
    def _every_task_scored(self) -> LeaderboardEntry:
        missing = [t for t in self.tasks if t not in self.scores]
        if missing:
            raise ValueError(f"scores: no scores for task(s) {', '.join(missing)}")
        return self

    @model_validator(mode="after")
    def _version_matches_content(self) -> LeaderboardEntry:
        if (self.collapse is not None) != (self.schema_id == CURVE_ENTRY_SCHEMA):
            raise ValueError(f"schema: an entry with a collapse curve is {CURVE_ENTRY_SCHEMA}, one without is "
                             f"{ENTRY_SCHEMA} (got {self.schema_id} {'with' if self.collapse else 'without'})")
        if self.collapse is not None and set(self.collapse.scores) - set(self.tasks):
            raise ValueError("collapse.scores: a task the entry does not have")
        return self

    def to_json(self) -> str:
        """The entry file's text: sorted keys, two-space indent, a final newline (deterministic)."""
        import json

        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True,
                          ensure_ascii=False, allow_nan=False) + "\n"


class LeaderboardEntryV1(_Strict):
    """A v1 entry (numbers only, no evidence, plausibility, flags or fingerprints): read from the archive and
    its id checked, never re-checked or ranked (there is nothing to recompute it from)."""

    schema_id: Literal["regurg-bench/leaderboard-entry/v1"] = Field(alias="schema")
    entry_id: Name
    leaderboard: Name
    model: Name
    base_model: Text
    run_name: Text
    config_hash: Hash
    build_config_hash: Hash | None = None
    seeds: list[int] = Field(min_length=1)
    tasks: list[Name] = Field(min_length=1)
    task_versions: dict[Name, Name]
    lm_eval_version: Text
    sacrebleu_signatures: dict[Metric, Text]
    test_set_fingerprints: dict[Name, Fingerprint]
    n_test_sentences: dict[Name, int]
    metrics: list[Metric] = Field(min_length=1)
    scoring: Scoring
    conditions: dict[Name, Condition]
    scores: dict[Name, dict[Name, dict[Metric, Score]]]
    degradation: dict[Name, dict[Name, dict[Metric, Effect]]]
    recovery: dict[Name, dict[Name, dict[Name, dict[Metric, Effect]]]]


# ---------------------------------------------------------------------- what a submission reads
class _Lenient(BaseModel):
    """A results.json block: keys this reader does not need are ignored (the run writes many)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False, populate_by_name=True)


class RunScore(Score):
    """:class:`Score` in lenient mode (``results.json``): unknown keys ignored, as :class:`_Lenient`'s."""

    model_config = _Lenient.model_config
    #: lm-eval's own per-seed scores, which the verifier checks against the recomputed ones (a run's only)
    lm_eval_reported: list[float] | None = None

    def strict(self) -> Score:
        """The same score in strict mode, as an entry keeps it (without the run's ``lm_eval_reported``)."""
        return Score.model_validate(self.model_dump(include=set(Score.model_fields)))


class RunStudent(_Lenient):
    condition: Name
    seed: int
    base_model: Text | None = None
    samples: dict[Name, str]
    results_file: str


class RunScoring(_Lenient):
    resamples: int = Field(gt=0, le=MAX_RESAMPLES)
    level: float = Field(gt=0.0, lt=1.0)
    seed: int


class RunCondition(_Lenient):
    kind: Name
    generator: Name | None = None
    size: int | None = None  # size-ladder rungs
    seeds: list[int] = Field(min_length=1)


class RunCheck(_Lenient):
    n_test_sentences: int = Field(gt=0)


class RunData(_Lenient):
    build_config_hash: Hash | None = None


class RunFingerprint(_Lenient):
    pairs: int
    fingerprint: str


class RunCollapseStudent(_Lenient):
    """A collapse student as results.json records it: where its logged samples are (relative to the run)."""

    samples: dict[Name, str]


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
    degradation: dict[Name, dict[Name, dict[Name, dict[Metric, Effect]]]] = Field(min_length=1)
    #: the growth, boundedness and tail claims (kept as dicts here: the study adds fields to them, and the
    #: entry's strict models pick what they carry)
    claims: list[dict[str, Any]] = []
    #: generation k's students (``<condition>-s<seed>``): their samples are what the curve is recomputed from
    students: dict[Name, RunCollapseStudent] = {}

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
    """The fields of ``results.json`` (schema ``regurg-bench/results/v1``) an entry is made from.

    Provenance fields are optional here so that a missing one gets its own message (see
    :mod:`regurg_bench.leaderboard.provenance`) rather than a generic schema error.
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
    degradation: dict[Name, dict[Name, dict[Metric, Effect]]]
    recovery: dict[Name, dict[Name, dict[Name, dict[Metric, Effect]]]]
    checks: dict[Name, RunCheck]
    #: degradation across generations (optional: runs without ``collapse:`` in their config have none)
    collapse: RunCollapse | None = None
    #: the weights actually used (optional: results scored before it was recorded have none)
    fingerprints: WeightFingerprints | None = None


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
