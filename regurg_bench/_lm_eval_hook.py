"""Make ``lm_eval --tasks regurg_mt`` work right after ``pip install``, with no ``--include_path``.

lm-eval 0.4.13 has no plugin discovery for tasks. The wheel therefore ships a one-line ``.pth`` file
that calls :func:`install` at interpreter start-up. :func:`install` only puts a tiny finder on
``sys.meta_path``; nothing is imported until somebody imports one of the lm-eval modules in
:data:`_PATCHES`. At that moment:

* ``lm_eval.tasks.manager``: ``TaskManager.__init__`` is wrapped so that our task folder is added to
  ``include_path`` — *before* the user's own paths, so a user's ``--include_path`` still overrides our
  tasks;
* ``lm_eval.models``: our model ``regurg-hf`` (:mod:`regurg_bench.evaluation.fast_hf`, lm-eval's ``hf``
  with faster greedy generation and the same text) is registered, lazily, beside lm-eval's own;
* ``lm_eval.api.metrics``: ``stderr_for_metric`` asks an aggregation function for its own standard
  error (a ``regurg_stderr`` attribute) before lm-eval's list of bootstrappable built-ins, so our
  corpus aggregations bootstrap sacrebleu's sentence statistics instead of re-scoring the corpus
  (:mod:`regurg_bench.evaluation.corpus_aggregations`). Without the hook their stderr is "N/A".

Opt out with ``REGURG_BENCH_NO_LM_EVAL_HOOK=1``. The hook also steps aside by itself once lm-eval
discovers task packages through the ``lm_eval.tasks`` entry point (upstream PR #4015), which this
package declares too.

Cost at start-up: one environment lookup and one object on ``sys.meta_path`` (well under 1 ms).
"""

# Only modules that every interpreter has imported already by the time .pth files run (os, sys):
# this file is imported at each Python start-up, so importlib.abc, functools or pathlib (~15 ms
# together) are imported lazily, only when lm-eval itself is imported.
import os
import sys

OPT_OUT_ENV = "REGURG_BENCH_NO_LM_EVAL_HOOK"
_PATCHED_FLAG = "_regurg_bench_patched"
#: our lm-eval model name and class (lazy: nothing is imported until lm-eval builds the model)
MODEL_NAME, MODEL_TARGET = "regurg-hf", "regurg_bench.evaluation.fast_hf:FastHFLM"


def task_config_dir():
    """Folder holding our lm-eval task YAML.

    In a wheel it is ``regurg_bench/task_configs``; in a source checkout (editable install) it is the
    top-level ``task_configs/`` beside the package.
    """
    from pathlib import Path

    here = Path(__file__).resolve().parent
    packaged = here / "task_configs"
    return packaged if packaged.is_dir() else here.parent / "task_configs"


def _opted_out() -> bool:
    return os.environ.get(OPT_OUT_ENV, "").strip().lower() not in ("", "0", "false", "no")


def patch_task_manager(module) -> None:
    """Wrap ``module.TaskManager.__init__`` so it also indexes our task folder."""
    cls = getattr(module, "TaskManager", None)
    if cls is None or getattr(cls, _PATCHED_FLAG, False):
        return
    if _lm_eval_has_entry_point_discovery(module):
        return
    original = cls.__init__

    def __init__(self, *args, **kwargs):
        if _opted_out():
            return original(self, *args, **kwargs)
        if args[1:2]:  # include_path given positionally (verbosity, include_path, ...)
            args = list(args)
            args[1] = _with_our_path(args[1])
        else:
            kwargs["include_path"] = _with_our_path(kwargs.get("include_path"))
        return original(self, *args, **kwargs)

    __init__.__doc__, __init__.__wrapped__ = original.__doc__, original
    cls.__init__ = __init__
    setattr(cls, _PATCHED_FLAG, True)


def _with_our_path(include_path):
    ours = str(task_config_dir())
    if include_path is None:
        return [ours]
    paths = list(include_path) if isinstance(include_path, (list, tuple)) else [include_path]
    if any(os.path.abspath(str(p)) == ours for p in paths):
        return paths
    # Ours first: lm-eval lets later paths override earlier ones, so the user's paths win.
    return [ours, *paths]


def _lm_eval_has_entry_point_discovery(module) -> bool:
    # Upstream PR #4015 reads the "lm_eval.tasks" entry-point group; once that exists our
    # declared entry point does the job and patching would index our folder twice.
    import inspect

    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return False
    return '"lm_eval.tasks"' in source or "'lm_eval.tasks'" in source


def register_models(module=None, force: bool = False) -> None:
    """Add ``regurg-hf`` to lm-eval's model registry (a lazy ``module:Class`` entry); ``force``: also when
    the hook is switched off (``regurg-bench eval`` asks for it by name)."""
    if module is None:
        import lm_eval.models  # noqa: F401  (lm-eval's own entries first: an empty registry triggers them)
    from lm_eval.api.registry import model_registry

    if (_opted_out() and not force) or MODEL_NAME in model_registry:
        return
    model_registry.register(MODEL_NAME, target=MODEL_TARGET)


def patch_stderr_for_metric(module) -> None:
    """Let an aggregation function bring its own standard error (``fn.regurg_stderr(items, iters)``)."""
    original = getattr(module, "stderr_for_metric", None)
    if original is None or getattr(original, _PATCHED_FLAG, False):
        return

    def stderr_for_metric(metric, bootstrap_iters):
        own = getattr(metric, "regurg_stderr", None)
        if own is not None and not _opted_out():
            if bootstrap_iters <= 0:
                return None
            return lambda items: own(items, bootstrap_iters)
        return original(metric, bootstrap_iters)

    stderr_for_metric.__doc__, stderr_for_metric.__wrapped__ = original.__doc__, original
    setattr(stderr_for_metric, _PATCHED_FLAG, True)
    module.stderr_for_metric = stderr_for_metric
    utils = sys.modules.get("lm_eval.evaluator_utils")  # imported the name before we patched it
    if utils is not None and getattr(utils, "stderr_for_metric", None) is original:
        utils.stderr_for_metric = stderr_for_metric


#: lm-eval module -> what to do right after it is imported
_PATCHES = {"lm_eval.tasks.manager": patch_task_manager, "lm_eval.models": register_models,
            "lm_eval.api.metrics": patch_stderr_for_metric}


class _Finder:  # a MetaPathFinder by duck typing (importing importlib.abc costs ~12 ms)
    """Finds nothing itself; wraps the real loader of the modules in ``_PATCHES`` to patch after exec."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _PATCHES:
            return None
        # Ask the remaining finders for the real spec (skip ourselves to avoid recursion).
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None


class _PatchingLoader:  # a Loader by duck typing
    def __init__(self, wrapped) -> None:
        self._wrapped = wrapped

    def create_module(self, spec):
        return self._wrapped.create_module(spec)

    def exec_module(self, module) -> None:
        self._wrapped.exec_module(module)
        try:
            _PATCHES[module.__name__](module)
        except Exception as err:  # never break lm-eval because of us
            print(f"regurg-bench: could not hook into {module.__name__} ({err}); our tasks still work with "
                  f"--include_path {task_config_dir()}", file=sys.stderr)

    def __getattr__(self, name):  # get_filename, get_source... used by tracebacks and inspect
        return getattr(self._wrapped, name)


def install() -> None:
    """Called from the ``.pth`` file at start-up. Cheap and idempotent."""
    if _opted_out():
        return
    for name, patch in _PATCHES.items():
        already = sys.modules.get(name)
        if already is not None:
            patch(already)
    if any(isinstance(f, _Finder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Finder())
