"""A protocol step that records where and when it ran, for the tests of the executors' scheduling."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from regurg_bench.protocol.steps import Step


@dataclass
class ProbeStep(Step):
    """Sleeps ``seconds``, then records its process id and its start and end times (or raises, with ``fail``)."""

    seconds: float = 0.0
    fail: bool = False
    stage: ClassVar[str] = "probe"

    @property
    def side_by_side(self) -> bool:
        return True

    def run(self) -> dict[str, Any]:
        started = time.time()
        time.sleep(self.seconds)
        if self.fail:
            raise RuntimeError(f"{self.name} failed on purpose")
        return {"pid": os.getpid(), "started": started, "ended": time.time(),
                "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
