"""The end-to-end protocol behind ``regurg-bench run``: build matched splits, train the student matrix
(REAL, REGURG per generator, fractions of real, ratio mixes, mitigations M1-M4), evaluate every student
with the regurg_mt lm-eval tasks, score degradation and recovery with paired-bootstrap intervals, and
write the report. Every step is cached by a fingerprint of its inputs (see :mod:`.plan`)."""

from regurg_bench.protocol.config import ProtocolConfig, default_protocol_config, load_protocol_config

__all__ = ["ProtocolConfig", "default_protocol_config", "load_protocol_config"]
