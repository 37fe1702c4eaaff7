"""Registration with lm-eval after `pip install`: the .pth start-up hook, its opt-out, lm-eval's CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from regurg_bench._lm_eval_hook import OPT_OUT_ENV, _with_our_path, task_config_dir

PROBE = ("from lm_eval.tasks import TaskManager; "
         "tm = TaskManager(include_defaults=False); "
         "print(sorted(t for t in tm.all_tasks if t.startswith('regurg_mt')))")


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k != OPT_OUT_ENV}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**clean, **env}, cwd="/", timeout=300)


def test_pth_file_is_installed_in_site_packages():
    import site

    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    assert any((Path(d) / "regurg_bench_lm_eval.pth").exists() for d in dirs), \
        "regurg_bench_lm_eval.pth not installed: reinstall with `pip install -e .`"


def test_fresh_interpreter_sees_our_tasks_without_include_path():
    proc = _python(PROBE)
    assert proc.returncode == 0, proc.stderr
    assert "'regurg_mt'" in proc.stdout and "'regurg_mt_en-es'" in proc.stdout


def test_opt_out_environment_variable():
    proc = _python(PROBE, **{OPT_OUT_ENV: "1"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_lm_eval_finds_our_model_class_by_name():
    proc = _python("from lm_eval.api.registry import get_model; print(get_model('regurg-hf').__name__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "FastHFLM"


def test_hook_is_not_active_under_python_dash_S_but_harmless():
    # `python -S` skips .pth files: the documented fallback is --include_path.
    proc = subprocess.run([sys.executable, "-S", "-c", "import sys; print('ok')"], capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "ok"


def test_users_include_path_comes_after_ours_so_it_overrides():
    ours = str(task_config_dir())
    assert _with_our_path(None) == [ours]
    assert _with_our_path("/mine") == [ours, "/mine"]
    assert _with_our_path(["/a", "/b"]) == [ours, "/a", "/b"]
    assert _with_our_path([ours]) == [ours]


@pytest.mark.slow
def test_lm_eval_cli_lists_and_validates_our_tasks(tmp_path):
    exe = shutil.which("lm_eval", path=str(Path(sys.executable).parent)) or "lm_eval"
    listed = subprocess.run([exe, "ls", "tasks"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert listed.returncode == 0, listed.stderr[-2000:]
    for name in ("regurg_mt", "regurg_mt_en-es", "regurg_mt_fr-en", "regurg_mt_custom"):
        assert f"|{name} " in listed.stdout
    validated = subprocess.run([exe, "validate", "--tasks", "regurg_mt"], capture_output=True, text=True,
                               cwd=tmp_path, timeout=300)
    assert validated.returncode == 0, validated.stderr[-2000:]
    assert "valid" in validated.stdout.lower()
