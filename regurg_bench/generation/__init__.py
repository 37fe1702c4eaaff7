"""Regurgitation: generators that write targets for sources, the generation cache, the batch runner.

    from regurg_bench.generation import GenerationCache, build_generator, generate_targets

    generator = build_generator("apertium")                      # or transformers / vllm / openai / teacher
    with GenerationCache("runs/gen-cache") as cache:
        for pair, result in generate_targets(generator, pairs, cache, batch_size=64):
            if result.ok:
                use(pair, result.text)                           # failures/empties are never targets

Backends import their heavy libraries (torch, vllm, openai) only when used.
"""

from regurg_bench.generation import (  # noqa: F401  (registration side effects)
    apertium_backend,
    openai_backend,
    teacher_backend,
    transformers_backend,
    vllm_backend,
)
from regurg_bench.generation.apertium_backend import APERTIUM_DIRECTIONS, ApertiumGenerator
from regurg_bench.generation.base import (
    GENERATORS,
    GenerationError,
    GenerationResult,
    Generator,
    GeneratorSignature,
    UnsupportedDirection,
    build_generator,
    generator_kinds,
    register_generator,
)
from regurg_bench.generation.cache import CacheEntry, CacheSummary, GenerationCache, cache_key
from regurg_bench.generation.openai_backend import OpenAIGenerator
from regurg_bench.generation.runner import GenerationStats, generate_targets
from regurg_bench.generation.teacher_backend import TeacherGenerator
from regurg_bench.generation.transformers_backend import TransformersGenerator, checkpoint_fingerprint
from regurg_bench.generation.vllm_backend import VLLMGenerator

__all__ = [
    "APERTIUM_DIRECTIONS", "GENERATORS", "ApertiumGenerator", "CacheEntry", "CacheSummary", "GenerationCache",
    "GenerationError", "GenerationResult", "GenerationStats", "Generator", "GeneratorSignature",
    "OpenAIGenerator", "TeacherGenerator", "TransformersGenerator", "UnsupportedDirection",
    "VLLMGenerator", "build_generator", "cache_key", "checkpoint_fingerprint", "generate_targets",
    "generator_kinds", "register_generator",
]
