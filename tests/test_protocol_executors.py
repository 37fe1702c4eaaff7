"""The local executor's worker processes: real spawned processes, real steps (ProbeStep records where and
when it ran). That they give the one-process numbers bit for bit is tested on a protocol run in
test_protocol.py."""

from __future__ import annotations

import os

import pytest

from regurg_bench.protocol.executors import LocalExecutor, default_workers
from regurg_bench.testing.steps import ProbeStep


def _run(executor: LocalExecutor, steps: list[ProbeStep]) -> tuple[dict, list[str]]:
    done: list[str] = []
    try:
        outcomes = executor.run(steps, on_done=lambda o: done.append(o.name))
    finally:
        executor.close()
    return {name: o.record for name, o in outcomes.items()}, done


def test_side_by_side_steps_run_on_two_worker_processes_each_after_its_dependencies(tmp_path):
    steps = [ProbeStep("a", tmp_path / "a", seconds=1.0), ProbeStep("b", tmp_path / "b", seconds=1.0),
             ProbeStep("c", tmp_path / "c", deps=("a",)), ProbeStep("d", tmp_path / "d", deps=("b", "c"))]
    records, done = _run(LocalExecutor(workers=2), steps)
    assert list(records) == ["a", "b", "c", "d"] and sorted(done) == ["a", "b", "c", "d"]
    assert os.getpid() not in {r["pid"] for r in records.values()}
    assert len({r["pid"] for r in records.values()}) == 2  # two workers, kept for the batch
    a, b, c, d = (records[n] for n in "abcd")
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # side by side
    assert c["started"] >= a["ended"] and d["started"] >= max(b["ended"], c["ended"])
    # OpenMP threads in the workers sleep while they wait (unless the user chose otherwise)
    assert {r["omp_wait_policy"] for r in records.values()} == {os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}


def test_a_failed_step_is_raised_once_the_others_settle_and_its_dependents_never_start(tmp_path):
    steps = [ProbeStep("bad", tmp_path / "bad", fail=True), ProbeStep("ok", tmp_path / "ok", seconds=0.5),
             ProbeStep("after", tmp_path / "after", deps=("bad",))]
    with pytest.raises(RuntimeError, match="bad failed on purpose"):
        _run(LocalExecutor(workers=2), steps)
    assert (tmp_path / "ok" / "done.json").is_file()
    assert not (tmp_path / "bad" / "done.json").exists() and not (tmp_path / "after").exists()


def test_one_worker_a_single_step_or_finished_steps_stay_in_this_process(tmp_path):
    records, _ = _run(LocalExecutor(workers=1), [ProbeStep("x", tmp_path / "x"), ProbeStep("y", tmp_path / "y")])
    assert {r["pid"] for r in records.values()} == {os.getpid()}
    records, _ = _run(LocalExecutor(workers=2), [ProbeStep("z", tmp_path / "z")])
    assert records["z"]["pid"] == os.getpid()
    # x and y are finished: their markers are read here, nothing is spawned for them
    executor = LocalExecutor(workers=2)
    records, _ = _run(executor, [ProbeStep("x", tmp_path / "x"), ProbeStep("y", tmp_path / "y")])
    assert {r["pid"] for r in records.values()} == {os.getpid()} and executor._pool is None


def test_a_step_listed_before_its_dependency_is_refused(tmp_path):
    with pytest.raises(ValueError, match="listed before a step it depends on"):
        LocalExecutor(workers=2).run([ProbeStep("c", tmp_path / "c", deps=("a",)), ProbeStep("a", tmp_path / "a")])


def test_worker_count_from_the_argument_the_environment_or_auto(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    monkeypatch.delenv("REGURG_BENCH_WORKERS", raising=False)
    assert default_workers() == 2 and default_workers("auto") == 2 and default_workers(3) == 3
    monkeypatch.setenv("REGURG_BENCH_WORKERS", "1")
    assert default_workers() == 1 and default_workers("4") == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert default_workers("auto") == 1
    for bad in ("0", "two", "-1"):
        with pytest.raises(ValueError, match="positive integer or 'auto'"):
            default_workers(bad)


def test_a_bad_worker_count_is_a_clean_error_before_any_work(tmp_path):
    from typer.testing import CliRunner

    from regurg_bench.cli import app

    result = CliRunner().invoke(app, ["run", "--workers", "two", "--out", str(tmp_path / "run"), "--no-progress"])
    assert result.exit_code == 2
    assert "workers must be a positive integer or 'auto', got 'two'" in result.output
    assert not (tmp_path / "run").exists()


def test_the_executors_module_imports_no_torch():
    """A worker imports the executors module (its initializer) before anything else: torch imported there would
    read OpenMP's wait policy before _worker_start sets it."""
    import subprocess
    import sys

    code = "import sys, regurg_bench.protocol.executors; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
