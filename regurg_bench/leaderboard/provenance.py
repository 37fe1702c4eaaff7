"""What makes numbers comparable across entries: known task versions, the published test sets, the
metric signatures and the lm-eval version.

Known task versions come from two places: :data:`RELEASED_TASK_VERSIONS` (versions whose numbers
are still comparable with today's, per task folder) and the ``metadata.version`` of every task YAML
in ``task_configs/`` (so a newly bumped version is known as soon as its YAML is). The published test
sets are ``task_configs/regurg_mt/test_set_fingerprints.json``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from regurg_bench.leaderboard.safe_io import read_json
from regurg_bench.leaderboard.schema import SubmissionError

#: Released versions per task folder whose numbers are comparable with the current ones (see the
#: "Versions" section of each folder's README). 1.0 predates the protocol runner, so no results.json
#: can carry it.
RELEASED_TASK_VERSIONS: dict[str, tuple[str, ...]] = {"regurg_mt": ("1.1", "1.2")}
PUBLISHED_FINGERPRINTS = Path("regurg_mt") / "test_set_fingerprints.json"


def version_str(version: Any) -> str:
    """lm-eval writes task versions as YAML gave them (``1.1`` a float); compare them as text."""
    return str(version)


class _TaskYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that reads lm-eval's ``!function`` tags as inert strings (never imported)."""


_TaskYamlLoader.add_constructor("!function", lambda loader, node: f"!function {loader.construct_scalar(node)}")


def _read_task_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A task YAML with its ``include:`` (same folder only) merged underneath it."""
    # A SafeLoader subclass: builds plain data only, like yaml.safe_load (which rejects the !function tag).
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)
    if not isinstance(data, dict):
        return {}
    include = data.pop("include", None)
    if isinstance(include, str):
        inc = (path.parent / include).resolve()
        if inc.parent == path.parent.resolve() and inc.is_file() and inc not in seen:
            base = _read_task_yaml(inc, (*seen, path.resolve()))
            merged_meta = {**(base.get("metadata") or {}), **(data.get("metadata") or {})}
            data = {**base, **data, "metadata": merged_meta}
    return data


def known_task_versions(task_dir: Path | None = None) -> dict[str, set[str]]:
    """``{task name: {known versions}}`` for every task YAML under ``task_dir`` (default: ours)."""
    if task_dir is None:
        return {k: set(v) for k, v in _default_known_task_versions().items()}
    out: dict[str, set[str]] = {}
    for path in sorted(Path(task_dir).glob("*/*.yaml")):
        if path.name.startswith("_"):
            continue
        data = _read_task_yaml(path)
        task, version = data.get("task"), (data.get("metadata") or {}).get("version")
        if not isinstance(task, str) or "group" in data or version is None:
            continue
        out.setdefault(task, set()).update({version_str(version), *RELEASED_TASK_VERSIONS.get(path.parent.name, ())})
    return out


@cache
def _default_known_task_versions() -> dict[str, frozenset[str]]:
    from regurg_bench._lm_eval_hook import task_config_dir

    return {k: frozenset(v) for k, v in known_task_versions(task_config_dir()).items()}


def published_fingerprints() -> dict[str, dict[str, Any]]:
    """The published test-set fingerprints, ``{task: {"pairs": n, "fingerprint": "sha256:..."}}``."""
    from regurg_bench._lm_eval_hook import task_config_dir

    path = task_config_dir() / PUBLISHED_FINGERPRINTS
    return read_json(path, 1024 * 1024, str(path))


def _settings(signature: str) -> dict[str, str]:
    """A sacrebleu signature's fields without the version (``nrefs:1|case:mixed|...|version:2.6.0``)."""
    fields = dict(part.split(":", 1) for part in signature.split("|") if ":" in part)
    fields.pop("version", None)
    return fields


def check_provenance(*, label: str, tasks: list[str], metrics: list[str], lm_eval_version: str | None,
                     task_versions: dict[str, Any], signatures: dict[str, str],
                     fingerprints: dict[str, Any]) -> None:
    """Raise :class:`SubmissionError` unless every task is a published one at a known version, evaluated on
    the published test set, with a signature for every metric (same settings as ours) and an lm-eval version."""
    from regurg_bench.evaluation.signatures import sacrebleu_signatures

    if not lm_eval_version or not str(lm_eval_version).strip():
        raise SubmissionError(f"{label}: field 'lm_eval_version' is missing or empty: the lm-eval version that "
                              "produced the numbers must be recorded")
    ours = sacrebleu_signatures()
    for metric in metrics:
        sig = signatures.get(metric)
        if not sig or "version:" not in sig:
            raise SubmissionError(f"{label}: field 'sacrebleu_signatures.{metric}' is missing or has no sacrebleu "
                                  f"version: every reported metric needs its signature (got {sig!r})")
        if metric in ours and _settings(sig) != _settings(ours[metric]):
            raise SubmissionError(f"{label}: field 'sacrebleu_signatures.{metric}' is {sig!r}, but {metric} on "
                                  f"this leaderboard is computed as {ours[metric]!r} (settings differ)")
    known = known_task_versions()
    published = published_fingerprints()
    for task in tasks:
        if task not in task_versions:
            raise SubmissionError(f"{label}: field 'task_versions.{task}' is missing: the task version must be "
                                  "recorded")
        version = version_str(task_versions[task])
        if version not in known.get(task, set()):
            allowed = ", ".join(sorted(known.get(task, set()))) or "none: not a leaderboard task"
            raise SubmissionError(f"{label}: field 'task_versions.{task}': unknown task version {version!r} "
                                  f"(known versions of {task}: {allowed})")
        if task not in published:
            raise SubmissionError(f"{label}: task {task!r} has no published test set "
                                  f"(published: {', '.join(sorted(published))})")
        claimed = fingerprints.get(task)
        if claimed is None:
            raise SubmissionError(f"{label}: field 'test_set_fingerprints.{task}' is missing")
        claimed = dict(claimed) if isinstance(claimed, dict) else claimed.model_dump()
        want = {"pairs": published[task]["pairs"], "fingerprint": published[task]["fingerprint"]}
        if {k: claimed.get(k) for k in want} != want:
            raise SubmissionError(
                f"{label}: field 'test_set_fingerprints.{task}': test-set fingerprint mismatch: "
                f"{claimed.get('fingerprint')} ({claimed.get('pairs')} pairs) is not the published "
                f"{want['fingerprint']} ({want['pairs']} pairs); the numbers are not on the published test set")
