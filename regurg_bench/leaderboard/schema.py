"""The leaderboard entry (schemas ``regurg-bench/leaderboard-entry/v2`` and ``/v3``), as strict pydantic models. A run's
``results.json`` is :class:`regurg_bench.results.RunResults` (its names are re-exported here).

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

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, model_serializer, model_validator

# the value types and the run's results model live in regurg_bench.results (below the protocol and the
# leaderboard); their names stay importable from here
from regurg_bench.results import (  # noqa: F401
    HASH_PATTERN,
    MAX_RESAMPLES,
    NAME_CHARS,
    RESULTS_SCHEMA,
    DiagnosticStat,
    Effect,
    Hash,
    Metric,
    Name,
    RunCheck,
    RunClaim,
    RunCollapse,
    RunCollapseStudent,
    RunCondition,
    RunData,
    RunDiagnostics,
    RunEffect,
    RunFingerprint,
    RunResults,
    RunScore,
    RunScoring,
    RunStudent,
    RunVerdict,
    Score,
    Status,
    StatVerdict,
    SubmissionError,
    Text,
    WeightFingerprints,
    _Lenient,
    _Strict,
    check_name,
    describe_validation_error,
    name_problem,
)

#: the entry of a run without a collapse curve (unchanged since v2, so its bytes are too)
ENTRY_SCHEMA = "regurg-bench/leaderboard-entry/v2"
#: the entry of a run with a collapse curve: v2 plus ``collapse``
CURVE_ENTRY_SCHEMA = "regurg-bench/leaderboard-entry/v3"
#: the versions an entry on a board may have (each re-checked from its evidence under its own version)
ENTRY_SCHEMAS = (ENTRY_SCHEMA, CURVE_ENTRY_SCHEMA)
#: v1 entries carried numbers only; v2 entries carry the evidence they are recomputed from
OLD_ENTRY_SCHEMAS = ("regurg-bench/leaderboard-entry/v1",)

#: Size limits: a submission is read into memory, so it must be small (a full 4-direction run with
#: 1,004 test sentences has a results.json of well under 1 MB and samples files of a few MB).
MAX_RESULTS_BYTES = 8 * 1024 * 1024
MAX_SAMPLES_BYTES = 64 * 1024 * 1024
MAX_LM_EVAL_RESULTS_BYTES = 16 * 1024 * 1024
MAX_ENTRY_BYTES = 4 * 1024 * 1024

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


class _EntryNumbers(_Strict):
    """What every entry version carries: the run, its provenance and its numbers (keys are sorted when an
    entry is written or hashed, so declaring them here once changes no entry's bytes or id)."""

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


class LeaderboardEntry(_EntryNumbers):
    """One submitted run on one leaderboard."""

    schema_id: Literal["regurg-bench/leaderboard-entry/v2", "regurg-bench/leaderboard-entry/v3"] = Field(
        alias="schema")
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


class LeaderboardEntryV1(_EntryNumbers):
    """A v1 entry (numbers only, no evidence, plausibility, flags or fingerprints): read from the archive and
    its id checked, never re-checked or ranked (there is nothing to recompute it from)."""

    schema_id: Literal["regurg-bench/leaderboard-entry/v1"] = Field(alias="schema")
