"""How much work a protocol run is, in model FLOPs and in seconds on *this* machine.

Machines of the same kind differ by 5-10x (an AMX CPU does ~200 GFLOP/s fp32 in torch, an AVX2-only
one ~26-40), so a time only means something next to the machine's measured rates. A short calibration
(about 10 s, cached per machine) times a few training steps and one generation batch of the student
size; the plan multiplies them by the run's token counts:

- training: 6 * parameters * input tokens (forward + backward);
- generation and evaluation: 2 * parameters * (prompt + generated) tokens.

The counts use nominal tokens per pair measured on the embedded corpus (prompt ~40, target ~45 tokens
with the 4k BPE vocabulary); the run's own training cards and samples give the exact numbers after.
"""

from __future__ import annotations

import json
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: nominal tokens of one translation pair of the embedded corpus with a 4k BPE vocabulary
PROMPT_TOKENS, TARGET_TOKENS = 40.0, 45.0
CALIBRATION_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """Seconds per training input token and per generated-pair token, on this machine, for one preset."""

    preset: str
    train_s_per_token: float
    generate_s_per_token: float
    fp32_gflops: float
    bf16_gflops: float
    machine: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def matmul_gflops(dtype_name: str = "float32", n: int = 1024, reps: int = 5) -> float:
    """Best GFLOP/s of an n x n matmul in torch at the current thread count."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def machine_id() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu} | {torch.get_num_threads()} threads | torch {torch.__version__} | {gpu}"


def _calibration_file() -> Path:
    from regurg_bench.assets import cache_dir

    return cache_dir() / "calibration.json"


def calibrate(preset: str = "tiny", *, refresh: bool = False) -> Calibration:
    """Time 4 training steps (batch 32) and one greedy generation batch of a fresh ``preset`` model.

    Cached per (machine, preset) in ``<cache>/calibration.json``; ``refresh`` measures again."""
    import torch

    machine = machine_id()
    key = f"v{CALIBRATION_VERSION}|{preset}|{machine}"
    path = _calibration_file()
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known and not refresh:
        return Calibration(**known[key])

    from regurg_bench.corpora.bible import load_bible_pairs
    from regurg_bench.models.scratch import init_scratch_model, train_tokenizer
    from regurg_bench.prompt import render_example, render_prompt

    pairs = load_bible_pairs("en-es", "dev")[:64]
    tok = train_tokenizer([t for p in pairs for t in (p.source, p.target)], 4000)
    model = init_scratch_model(tok, preset, 0)
    model.config._attn_implementation = "eager"
    texts = ["".join(render_example(p.source, p.target, "en", "es")) for p in pairs[:32]]
    batch = tok(texts, return_tensors="pt", padding=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = model(**batch, labels=batch["input_ids"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(3):
        step()
    train_s_per_token = (time.perf_counter() - t) / 3 / int(batch["attention_mask"].sum())
    tok.padding_side = "left"
    prompts = tok([render_prompt(p.source, "en", "es") for p in pairs], return_tensors="pt", padding=True)
    model.eval()
    with torch.inference_mode():
        t = time.perf_counter()
        out = model.generate(**prompts, max_new_tokens=int(TARGET_TOKENS), min_new_tokens=int(TARGET_TOKENS),
                             do_sample=False, pad_token_id=tok.pad_token_id)
        seconds = time.perf_counter() - t
    n_tokens = int(prompts["attention_mask"].sum()) + (out.shape[1] - prompts["input_ids"].shape[1]) * len(pairs)
    cal = Calibration(preset, train_s_per_token, seconds / n_tokens, matmul_gflops("float32"),
                      matmul_gflops("bfloat16", n=512, reps=2), machine)
    known[key] = cal.to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)
    return cal


@dataclass
class WorkItem:
    """One unit of a run's work: what it is, its tokens and FLOPs, and its estimated seconds here."""

    stage: str
    name: str
    train_tokens: float = 0.0
    generate_tokens: float = 0.0
    fixed_s: float = 0.0  # work that is not model compute (Apertium, diagnostics, scoring)
    parameters: float = 0.0

    @property
    def flops(self) -> float:
        return 6 * self.parameters * self.train_tokens + 2 * self.parameters * self.generate_tokens

    def seconds(self, cal: Calibration | None) -> float:
        if cal is None:
            return self.fixed_s
        return self.fixed_s + self.train_tokens * cal.train_s_per_token + self.generate_tokens * cal.generate_s_per_token


def preset_parameters(preset: str) -> float:
    from regurg_bench.models.scratch import get_preset

    p = get_preset(preset)
    layer = 4 * p.hidden_size**2 + 3 * p.hidden_size * p.intermediate_size
    return float(p.num_hidden_layers * layer + p.vocab_size * p.hidden_size)


LM_GENERATOR_KINDS = frozenset({"teacher", "transformers", "vllm"})


def student_train_tokens(cfg, condition: str) -> float:
    """Input tokens one student of ``condition`` trains on (nominal pair length)."""
    t = cfg.train
    if condition.startswith("m4_"):
        steps, bs = cfg.mitigations.unlearning.steps, t.get("batch_size", 32)
        return 2 * steps * bs * (PROMPT_TOKENS + TARGET_TOKENS)  # replay + forget batch each step
    pairs = cfg.build.size or 3000
    if condition.startswith("m1_topk_"):
        pairs = round(pairs * cfg.mitigations.quality.top_fraction)
    elif condition.startswith("fraction_real_"):
        pairs = round(pairs * int(condition.rsplit("_", 1)[1]) / 100)
    bs = t.get("batch_size", 32)
    steps = t.get("max_steps") or max(1, round(t.get("epochs", 1.0) * -(-pairs // bs)))
    return steps * bs * (PROMPT_TOKENS + TARGET_TOKENS)


def plan_work(cfg, conditions: list[str], n_test: int = 1004) -> list[WorkItem]:
    """The run's work items in the order the run does them (cached steps are not subtracted)."""
    from regurg_bench.models.base_models import BASE_MODELS, is_built

    base = str(cfg.train.get("base_model", "scratch:tiny"))
    preset = BASE_MODELS[base].preset if base in BASE_MODELS else base.removeprefix("scratch:")
    try:
        params = preset_parameters(preset)
    except ValueError:  # a real pretrained model: no preset to count from
        params = 0.0
    items: list[WorkItem] = []
    if base in BASE_MODELS and not is_built(base):
        r = BASE_MODELS[base]
        items.append(WorkItem("base model", base, train_tokens=r.train_tokens_estimate(PROMPT_TOKENS + TARGET_TOKENS),
                              parameters=params))
    size = cfg.build.size or 3000
    for name, g in cfg.build.generators.items():
        n = size
        if cfg.mitigations.detector.enabled and name in cfg.mitigated_generators():
            n += cfg.mitigations.detector.heldout_pairs + size // 5 + 50
        if g.kind in LM_GENERATOR_KINDS:
            items.append(WorkItem("build", f"generate {name}", generate_tokens=n * (PROMPT_TOKENS + TARGET_TOKENS),
                                  parameters=params))
        else:
            items.append(WorkItem("build", f"generate {name}", fixed_s=n / 100.0))  # Apertium: ~100 pairs/s
    items.append(WorkItem("data", "diagnostics and mitigation data", fixed_s=40.0))
    limit = cfg.eval.limit or n_test
    for seed in cfg.seeds:
        for cond in conditions:
            items.append(WorkItem("train", f"{cond}-s{seed}", train_tokens=student_train_tokens(cfg, cond),
                                  parameters=params, fixed_s=3.0))
    for seed in cfg.seeds:
        for cond in conditions:
            items.append(WorkItem("eval", f"{cond}-s{seed}", generate_tokens=limit * (PROMPT_TOKENS + TARGET_TOKENS),
                                  parameters=params, fixed_s=4.0))
    if cfg.collapse is not None:
        items += collapse_work(cfg, params, limit)
    items.append(WorkItem("score", "score and report", fixed_s=0.004 * len(conditions) * len(cfg.seeds) * limit))
    return items


def collapse_work(cfg, params: float, limit: int) -> list[WorkItem]:
    """The collapse study's steps (:mod:`~regurg_bench.protocol.collapse_steps`), named as the run names them:
    each generation decodes the training sources (up to ``max_new_tokens`` each), trains on replace (the real
    split's size), accumulate (k + 1 times it) or accumulate_equal (its size), and is evaluated."""
    from regurg_bench.protocol.collapse_steps import chain_order, condition, targets_name

    c, t = cfg.collapse, cfg.train
    size, bs = cfg.build.size or 3000, t.get("batch_size", 32)
    items: list[WorkItem] = []
    decoded: set[str] = set()
    for seed, k, mode in chain_order(cfg):
        name = targets_name(mode, k, seed)
        if name not in decoded:
            decoded.add(name)
            items.append(WorkItem("collapse_generate", name, parameters=params,
                                  generate_tokens=size * (PROMPT_TOKENS + min(TARGET_TOKENS, c.max_new_tokens))))
        pairs = size * (k + 1) if mode == "accumulate" else size
        steps = t.get("max_steps") or max(1, round(t.get("epochs", 1.0) * -(-pairs // bs)))
        student = f"{condition(mode, k)}-s{seed}"
        items.append(WorkItem("collapse_train", student, train_tokens=steps * bs * (PROMPT_TOKENS + TARGET_TOKENS),
                              parameters=params, fixed_s=3.0))
        items.append(WorkItem("collapse_eval", student, generate_tokens=limit * (PROMPT_TOKENS + TARGET_TOKENS),
                              parameters=params, fixed_s=4.0))
    return items


def summarise(items: list[WorkItem], cal: Calibration | None) -> dict[str, Any]:
    by_stage: dict[str, dict[str, float]] = {}
    for it in items:
        st = by_stage.setdefault(it.stage, {"seconds": 0.0, "tflop": 0.0, "items": 0})
        st["seconds"] += it.seconds(cal)
        st["tflop"] += it.flops / 1e12
        st["items"] += 1
    return {"stages": by_stage, "seconds": sum(v["seconds"] for v in by_stage.values()),
            "tflop": sum(v["tflop"] for v in by_stage.values()),
            "calibration": cal.to_dict() if cal else None}
