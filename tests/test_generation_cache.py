"""The generation cache and runner: kill -9 and resume, two processes on one cache, torn lines,
failures recorded and retried. Real Bible verses; a model-free scripted generator keeps it fast (the
transformers/openai/vllm/apertium tests run real backends through the same runner)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from regurg_bench.corpora.base import Pair
from regurg_bench.generation import (
    GenerationCache,
    GenerationResult,
    GenerationStats,
    build_generator,
    cache_key,
    generate_targets,
)
from regurg_bench.testing import ScriptedGenerator, scripted_translation


@pytest.fixture(scope="module")
def verses() -> list[Pair]:
    from regurg_bench.corpora.bible import load_bible_pairs

    return load_bible_pairs("en-es", "train")[:400]


def _expected(pairs: list[Pair]) -> dict[str, str]:
    return {p.id: scripted_translation(p.source, p.src_lang, p.tgt_lang) for p in pairs}


def _shard_rows(root: Path) -> list[dict]:
    """Every complete, parseable row on disk (what a reader would use)."""
    rows = []
    for shard in sorted(root.glob("*/shard-*.jsonl")):
        data = shard.read_bytes()
        for line in data[:data.rfind(b"\n") + 1].split(b"\n")[:-1]:
            rows.append(json.loads(line))
    return rows


_WORKER = textwrap.dedent("""
    import json, sys
    from regurg_bench.corpora.base import Pair
    from regurg_bench.generation import GenerationCache, generate_targets
    from regurg_bench.testing import ScriptedGenerator
    pairs_file, cache_root, out_file, delay, log_path = sys.argv[1:6]
    pairs = [Pair(**row) for row in json.load(open(pairs_file))]
    gen = ScriptedGenerator(delay=float(delay), log_path=log_path)
    with GenerationCache(cache_root) as cache, open(out_file, "w") as out:
        for pair, result in generate_targets(gen, pairs, cache, batch_size=8, progress=False):
            out.write(json.dumps([pair.id, result.status, result.text]) + "\\n")
""")


def _start_worker(tmp: Path, pairs: list[Pair], cache_root: Path, name: str, delay: float) -> tuple:
    pairs_file = tmp / f"{name}.pairs.json"
    pairs_file.write_text(json.dumps([p.to_dict() for p in pairs]))
    out, log = tmp / f"{name}.out.jsonl", tmp / f"{name}.generated.txt"
    proc = subprocess.Popen([sys.executable, "-c", _WORKER, str(pairs_file), str(cache_root), str(out), str(delay),
                             str(log)], stderr=subprocess.PIPE, text=True)
    return proc, out, log


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_kill_9_mid_generation_then_resume_loses_and_duplicates_nothing(tmp_path, verses):
    cache_root = tmp_path / "cache"
    # Reference: one uninterrupted run in its own cache.
    ref = {p.id: r for p, r in generate_targets(ScriptedGenerator(), verses, GenerationCache(tmp_path / "ref"),
                                                 batch_size=8, progress=False)}
    assert all(r.ok for r in ref.values()) and len(ref) == len(verses)

    committed_before = 0
    for attempt, kill_after_rows in enumerate((40, 150, 260)):
        proc, _, _ = _start_worker(tmp_path, verses, cache_root, f"killed{attempt}", delay=0.05)
        deadline = time.monotonic() + 60
        while len(_shard_rows(cache_root)) < kill_after_rows:
            assert proc.poll() is None, f"worker ended early: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "worker made no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        rows = _shard_rows(cache_root)
        keys = [r["key"] for r in rows]
        assert len(keys) == len(set(keys)), "a resumed run regenerated a committed row"
        assert len(rows) > committed_before, "the killed run committed nothing"
        committed_before = len(rows)
        assert len(rows) < len(verses), "killed too late to test anything"

    committed = {r["key"] for r in _shard_rows(cache_root)}
    proc, out, log = _start_worker(tmp_path, verses, cache_root, "final", delay=0.0)
    assert proc.wait(timeout=120) == 0, proc.stderr.read()

    rows = _shard_rows(cache_root)
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys)) == len(verses), "rows lost or duplicated"
    assert all(r["status"] == "ok" for r in rows)
    # The final run generated exactly what was not committed before, nothing else.
    sig_hash = ScriptedGenerator().signature().hash
    regenerated = {cache_key(sig_hash, s, "en", "es") for s in _lines(log)}
    assert regenerated == {cache_key(sig_hash, p.source, "en", "es") for p in verses} - committed
    # And it yields, in order, exactly what an uninterrupted run yields.
    final = [json.loads(line) for line in _lines(out)]
    assert [row[0] for row in final] == [p.id for p in verses]
    assert {row[0]: row[2] for row in final} == {pid: r.text for pid, r in ref.items()}


def test_two_processes_on_one_cache_do_not_corrupt_it(tmp_path, verses):
    cache_root = tmp_path / "cache"
    pairs = verses[:240]
    a = _start_worker(tmp_path, pairs, cache_root, "a", delay=0.01)
    b = _start_worker(tmp_path, list(reversed(pairs)), cache_root, "b", delay=0.01)
    for proc, _, _ in (a, b):
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    expected = _expected(pairs)
    for _, out, _ in (a, b):
        got = {row[0]: (row[1], row[2]) for row in map(json.loads, _lines(out))}
        assert got == {pid: ("ok", text) for pid, text in expected.items()}
    shards = sorted(cache_root.glob("*/shard-*.jsonl"))
    assert len(shards) == 2  # one shard per writer: no two processes ever append to one file
    for shard in shards:
        assert shard.read_bytes().endswith(b"\n")
        for line in shard.read_text(encoding="utf-8").splitlines():
            json.loads(line)  # every line is a whole row
    cache = GenerationCache(cache_root)
    summary = cache.summary(ScriptedGenerator().signature())
    assert (summary.entries, summary.ok, summary.failed, summary.corrupt_lines) == (len(pairs), len(pairs), 0, 0)
    # The processes started at opposite ends and picked up each other's rows: little duplicated work.
    assert summary.rows < 2 * len(pairs)


def test_torn_last_line_and_garbage_are_ignored(tmp_path, verses):
    pairs = verses[:20]
    gen = ScriptedGenerator()
    cache = GenerationCache(tmp_path)
    list(generate_targets(gen, pairs[:10], cache, batch_size=4, progress=False))
    cache.close()
    (shard,) = tmp_path.glob("*/shard-*.jsonl")
    # A writer killed inside os.write leaves a prefix: here half of a row, no newline.
    whole = shard.read_bytes()
    last = whole[:-1].rsplit(b"\n", 1)[-1] + b"\n"
    with open(shard, "ab") as fh:
        fh.write(last[: len(last) // 2])
    other = shard.with_name("shard-other-1-x.jsonl")
    other.write_bytes(b'{"not": "a row"}\n\x00\x00\x00garbage\n')

    reopened = GenerationCache(tmp_path)
    sig = gen.signature()
    summary = reopened.summary(sig)
    assert summary.entries == 10 and summary.ok == 10 and summary.corrupt_lines == 2
    stats = GenerationStats()
    results = dict((p.id, r) for p, r in generate_targets(gen, pairs, reopened, batch_size=4, progress=False,
                                                           stats=stats))
    assert stats.cached == 10 and stats.generated == 10
    assert {pid: r.text for pid, r in results.items()} == _expected(pairs)


def test_failures_are_recorded_retried_and_reported_never_targets(tmp_path, verses):
    pairs = verses[:12]
    bad, empty = pairs[2].source, pairs[5].source
    log = tmp_path / "generated.txt"
    cache = GenerationCache(tmp_path / "cache", max_attempts=2)

    def run(**knobs) -> dict[str, GenerationResult]:
        gen = ScriptedGenerator(log_path=str(log), **knobs)
        return {p.id: r for p, r in generate_targets(gen, pairs, cache, batch_size=5, progress=False)}

    first = run(fail_sources=[bad], empty_sources=[empty])
    assert first[pairs[2].id].status == "failed" and first[pairs[2].id].reason == "scripted failure"
    assert first[pairs[5].id].status == "empty" and first[pairs[5].id].target is None
    assert sum(r.ok for r in first.values()) == 10
    sig = ScriptedGenerator().signature()
    summary = cache.summary(sig)
    assert (summary.ok, summary.failed, summary.empty, summary.exhausted) == (10, 1, 1, 0)
    assert summary.reasons == {"scripted failure": 1, "scripted empty output": 1}
    assert {e["source"] for e in summary.examples} == {bad, empty}

    # Second try (attempt 2 = max_attempts): still failing, now exhausted.
    log.unlink()
    second = run(fail_sources=[bad])
    assert _lines(log) == [bad, empty]  # only the two non-ok sources were tried again
    assert second[pairs[2].id].status == "failed" and second[pairs[2].id].attempts == 2
    assert second[pairs[5].id].ok  # the empty one succeeded on retry
    assert cache.summary(sig).exhausted == 1

    # Third run: the exhausted failure is reported, not retried, and never becomes a target.
    log.unlink()
    stats = GenerationStats()
    gen = ScriptedGenerator(log_path=str(log))
    third = {p.id: r for p, r in generate_targets(gen, pairs, cache, batch_size=5, progress=False, stats=stats)}
    assert not log.exists() and stats.generated == 0 and stats.cached == len(pairs)
    assert third[pairs[2].id].status == "failed" and third[pairs[2].id].target is None

    # A fresh cache object over the same files agrees (everything is on disk).
    again = GenerationCache(tmp_path / "cache", max_attempts=3)
    entry = again.lookup(sig, bad, "en", "es")
    assert entry is not None and entry.attempts == 2 and again.needs_generation(entry)


def test_signature_is_stable_and_changes_with_what_matters(tmp_path):
    a = ScriptedGenerator(delay=0.5).signature()
    b = ScriptedGenerator().signature()
    assert a.hash == b.hash  # speed knobs are provenance, not output-relevant
    d = a.to_dict()
    assert d["hash"] == a.hash and d["kind"] == "scripted" and d["info"]["delay"] == 0.5
    assert a.hash == json.loads(json.dumps(d))["hash"]
    from regurg_bench.generation.base import GeneratorSignature

    base = GeneratorSignature(kind="x", model="m", decoding={"t": 0, "max": 5})
    same = GeneratorSignature(kind="x", model="m", decoding={"max": 5, "t": 0}, info={"path": "/elsewhere"})
    other = GeneratorSignature(kind="x", model="m", decoding={"t": 0, "max": 6})
    assert base.hash == same.hash != other.hash
    # A pinned value: the canonical form must not drift between versions of this code.
    assert base.hash == "sha256:" + __import__("hashlib").sha256(
        b'{"decoding":{"max":5,"t":0},"kind":"x","model":"m","options":{},"prompt_template":null,'
        b'"revision":null,"signature_version":1,"versions":{}}').hexdigest()


def test_runner_deduplicates_groups_directions_and_checks_them(tmp_path, verses):
    p0 = verses[0]
    pairs = [p0, Pair("dup", p0.source, p0.target, "en", "es"), p0.reversed()]
    gen = ScriptedGenerator(log_path=str(tmp_path / "log"))
    out = list(generate_targets(gen, pairs, GenerationCache(tmp_path / "c"), batch_size=8, progress=False))
    assert [r.text for _, r in out] == [scripted_translation(p.source, p.src_lang, p.tgt_lang) for p in pairs]
    assert len(_lines(tmp_path / "log")) == 2  # the duplicate was generated once
    apertium = build_generator("apertium")
    with pytest.raises(ValueError, match="Supported directions"):
        next(generate_targets(apertium, [Pair("x", "Bonjour.", "Hello.", "fr", "en")], None, progress=False))


def test_progress_bar_renders(tmp_path, verses, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    stats = GenerationStats()
    list(generate_targets(ScriptedGenerator(), verses[:30], GenerationCache(tmp_path), batch_size=10,
                          progress=True, stats=stats))
    err = capsys.readouterr().err
    assert "30/30" in err and "pairs/s" in err and "tok/s" in err
    assert stats.pairs == 30 and stats.tokens > 0 and stats.pairs_per_second > 0


def test_a_failed_write_never_glues_later_rows_to_a_torn_line(tmp_path, verses, monkeypatch):
    import errno

    import regurg_bench.generation.cache as cache_module

    gen, sig = ScriptedGenerator(), ScriptedGenerator().signature()
    cache = GenerationCache(tmp_path)
    rows = [(p.source, "en", "es", GenerationResult.success(f"t{i}")) for i, p in enumerate(verses[:6])]
    real_write = os.write

    def half_then_disk_full(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cache_module.os, "write", half_then_disk_full)
    with pytest.raises(OSError):
        cache.commit(sig, rows[:4])
    monkeypatch.setattr(cache_module.os, "write", real_write)
    cache.commit(sig, rows[4:])  # goes to a fresh shard
    assert len(list(tmp_path.glob("*/shard-*.jsonl"))) == 2
    fresh = GenerationCache(tmp_path)
    summary = fresh.summary(sig)
    assert summary.corrupt_lines == 0 and summary.ok == summary.entries
    assert {rows[4][0], rows[5][0]} <= {e["source"] for e in _shard_rows(tmp_path)}
    # The rows lost in the torn write are simply not there: the runner generates them again.
    missing = [r for r in rows[:4] if fresh.lookup(sig, r[0], "en", "es") is None]
    assert missing and gen.generate([missing[0][0]], "en", "es")[0].ok
