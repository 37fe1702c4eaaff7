"""The rules of a comparable entry. A rejection names its rule: ``rule 'full-test-set': ...``.

- ``full-test-set``: every student is scored on the whole published test set, every ``doc_id`` exactly
  once (a subset or a ``--limit`` run measures something else, so it is not ranked beside full runs);
- ``required-conditions``: the run scores exactly the conditions its recorded config plans (REAL, one
  REGURG per generator, every enabled mitigation), each with every seed of the config, and the config
  hash is the hash of that recorded config;
- ``same-task-and-signatures``: a known version of a published task, the published test-set fingerprint,
  our metric signatures and a recorded lm-eval version (:mod:`.provenance`);
- ``plausibility``: the share of hypotheses identical to their reference (and to their source) is
  measured per condition. A model that reproduces the test references has seen the test set: at
  :data:`CONTAMINATED_SHARE` or more the entry is flagged ``contaminated`` (shown, ranked after every
  unflagged entry, never first); at :data:`REFUSED_SHARE` or more it is refused.
- ``evidence``: the logged samples the numbers come from are stored with the entry (:mod:`.evidence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regurg_bench.leaderboard.schema import SubmissionError

CONTAMINATED_SHARE = 0.10
REFUSED_SHARE = 0.50
CONTAMINATED = "contaminated"

RULES = {
    "full-test-set": "every doc id of the published test set, exactly once",
    "required-conditions": "exactly the conditions and seeds the recorded config plans",
    "same-task-and-signatures": "a published task at a known version, our metric signatures",
    "plausibility": f"under {REFUSED_SHARE:.0%} of hypotheses copy the reference (flagged from "
                    f"{CONTAMINATED_SHARE:.0%})",
    "evidence": "the logged samples are stored with the entry and reproduce every number",
}


def violation(rule: str, message: str) -> SubmissionError:
    """A rejection that names its rule."""
    assert rule in RULES, rule
    return SubmissionError(f"rule {rule!r}: {message}")


def check_full_test_set(rel: str, doc_ids: Sequence[int], n_published: int, task: str) -> None:
    """``doc_ids`` (sorted) must be exactly ``0 .. n_published - 1``."""
    if len(set(doc_ids)) != len(doc_ids):
        raise violation("full-test-set", f"{rel}: a doc_id is logged more than once")
    if list(doc_ids) != list(range(n_published)):
        missing = n_published - len(set(doc_ids) & set(range(n_published)))
        outside = sorted(set(doc_ids) - set(range(n_published)))[:5]
        raise violation("full-test-set", f"{rel}: {len(doc_ids)} test sentences logged, but the published test set "
                                         f"of {task} has {n_published} (doc ids 0..{n_published - 1}, each once); "
                                         f"{missing} missing" + (f", out of range: {outside}" if outside else "")
                                         + ". Run with eval.limit: null")


def check_required_conditions(config: dict[str, Any], conditions: dict[str, Any], config_hash: str,
                              resolved: dict[str, Any] | None) -> None:
    """The scored conditions and seeds are exactly what the recorded config plans."""
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.hashing import config_hash as hash_config
    from regurg_bench.protocol.config import ProtocolConfig, _validate
    from regurg_bench.protocol.run import planned_conditions

    try:
        cfg: ProtocolConfig = _validate(config, "results.json field 'config'")
    except ConfigError as err:
        raise violation("required-conditions", f"the recorded config is not a valid protocol config: {err}") from None
    if resolved is not None:
        body = {"config": cfg.model_dump(mode="json"), "resolved": resolved}
        digest = hash_config(body)
        if digest != config_hash:
            raise violation("required-conditions", f"results.json field 'config_hash' is {config_hash}, but the "
                                                   f"recorded config and resolved settings hash to {digest}")
    planned = planned_conditions(cfg)
    missing = [c for c in planned if c not in conditions]
    extra = sorted(set(conditions) - set(planned))
    if missing or extra:
        raise violation("required-conditions", "the run must score exactly the conditions its config plans"
                        + (f"; missing: {', '.join(missing)}" if missing else "")
                        + (f"; not planned: {', '.join(extra)}" if extra else ""))
    for cond, info in conditions.items():
        seeds = sorted(info["seeds"] if isinstance(info, dict) else info.seeds)
        if seeds != sorted(cfg.seeds):
            raise violation("required-conditions", f"condition {cond!r} has seeds {seeds}, the config plans "
                                                   f"{sorted(cfg.seeds)}")


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def copy_shares(hyps_by_seed: Sequence[Sequence[str]], refs: Sequence[str], sources: Sequence[str]
                ) -> dict[str, float]:
    """Shares of hypotheses (all seeds together) identical, up to whitespace, to their reference and source."""
    total = sum(len(h) for h in hyps_by_seed) or 1
    ref = sum(_same(h, r) for hyps in hyps_by_seed for h, r in zip(hyps, refs, strict=True))
    src = sum(_same(h, s) for hyps in hyps_by_seed for h, s in zip(hyps, sources, strict=True))
    return {"copied_reference": ref / total, "copied_source": src / total}


def plausibility_flags(plausibility: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """``["contaminated"]`` when any condition copies references at the flag level; a rejection naming the
    rule (and the condition) at the refusal level."""
    worst = max(((share["copied_reference"], task, cond) for task, per in plausibility.items()
                 for cond, share in per.items()), default=(0.0, "", ""))
    if worst[0] >= REFUSED_SHARE:
        raise violation("plausibility", f"{worst[0]:.0%} of the hypotheses of condition {worst[2]!r} on {worst[1]} "
                                        f"are identical to their reference (refused from {REFUSED_SHARE:.0%}): a "
                                        "model that reproduces the test references has seen the test set")
    return [CONTAMINATED] if worst[0] >= CONTAMINATED_SHARE else []
