"""lm-eval's output kept in the run's log (:func:`regurg_bench.evaluation.runner.output_to`)."""

from __future__ import annotations

import logging
import sys

from regurg_bench.evaluation.runner import output_to


def test_a_logger_made_inside_the_block_writes_to_stdout_after_it(tmp_path, capsys):
    """vLLM configures its loggers when first imported, which happens inside the block: their handler then holds
    the redirected stdout (the log file). After the block it must write to the real stdout, not to the closed
    file (which printed a "Logging error" traceback at every vLLM engine shutdown)."""
    log = tmp_path / "run.log"
    with output_to(str(log)):
        logger = logging.getLogger("regurg_test_late_library")
        handler = logging.StreamHandler(sys.stdout)  # what vLLM's logging config does at import
        logger.addHandler(handler)
        logger.propagate = False
        print("inside")
    try:
        logger.warning("after the block")
        out = capsys.readouterr()
        assert "after the block" in out.out and "Logging error" not in out.err
        assert "inside" in log.read_text(encoding="utf-8")
    finally:
        logger.removeHandler(handler)
