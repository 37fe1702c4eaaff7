"""Test doubles, kept out of the production registries and the pipeline stages.

* :mod:`.generators` — the model-free ``scripted`` generator and :func:`scripted_model` (a real tiny
  checkpoint with a known greedy answer);
* :mod:`.openai_server` — a real OpenAI-compatible HTTP server on the loopback interface, with faults;
* :mod:`.steps` — a protocol step that records the process and the time it ran in (executor tests).

Importing this package registers the ``scripted`` generator. The test suite does so through the
plug-in variable (``REGURG_BENCH_PLUGINS=regurg_bench.testing``, set in ``tests/conftest.py``), so the
subprocesses a test starts (``regurg-bench run``, cache workers) see it too; production code never
imports this package.
"""

from regurg_bench.testing.generators import ScriptedGenerator, scripted_model, scripted_translation

__all__ = ["ScriptedGenerator", "scripted_model", "scripted_translation"]
