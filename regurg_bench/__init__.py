"""regurg-bench: does training on regurgitated (LLM-generated) data hurt, and do mitigations help?

Kept import-light on purpose: ``regurg_bench._lm_eval_hook`` is imported at interpreter start-up by a
``.pth`` file, so nothing heavy (torch, datasets, lm_eval) may be imported here.
"""

__version__ = "0.1.0"
