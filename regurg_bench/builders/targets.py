"""Generators as the builder sees them: a registered generator behind the generation cache."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regurg_bench.builders.config import BuildConfig
from regurg_bench.corpora.base import Pair


class CachedTargetGenerator:
    """Adapts a :class:`regurg_bench.generation.base.Generator` to the builder's ``TargetGenerator``.

    Every call goes through :func:`regurg_bench.generation.runner.generate_targets`, so finished
    generations survive a crash and a re-run (or the builder's second read) costs only cache look-ups.
    """

    def __init__(self, name: str, generator, cache, batch_size: int = 32, progress: bool = False) -> None:
        self.name, self.generator, self.cache = name, generator, cache
        self.batch_size, self.progress = batch_size, progress

    def signature(self) -> dict[str, Any]:
        return self.generator.signature().to_dict()

    def generate(self, pairs: list[Pair]) -> list[str | None]:
        from regurg_bench.generation.runner import generate_targets

        results = generate_targets(self.generator, pairs, self.cache, batch_size=self.batch_size,
                                   progress=self.progress)
        return [result.target for _, result in results]

    def close(self) -> None:
        self.generator.close()


def make_target_generators(config: BuildConfig, cache_root: str | Path | None = None
                           ) -> dict[str, CachedTargetGenerator]:
    """One cached generator per ``config.generators`` entry (models load lazily, on first use)."""
    from regurg_bench.assets import cache_dir
    from regurg_bench.generation.base import build_generator
    from regurg_bench.generation.cache import GenerationCache

    cache = GenerationCache(Path(cache_root) if cache_root else cache_dir() / "generations")
    if sum(g.kind == "vllm" for g in config.generators.values()) > 1:
        from regurg_bench.generation.vllm_backend import keep_engine_processes

        # the builder asks every generator for each batch in turn: their engines must stay up together
        keep_engine_processes("several vllm generators take turns in this build")
    return {name: CachedTargetGenerator(name, build_generator(g.kind, **g.options), cache, config.batch_size)
            for name, g in config.generators.items()}
