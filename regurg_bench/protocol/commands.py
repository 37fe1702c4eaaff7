"""``regurg-bench run [CONFIG]``: the whole protocol, cached step by step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from regurg_bench.console import print_error


def _to_stderr(message: str) -> None:
    """Progress lines of a command whose stdout is one JSON line."""
    import sys

    sys.stderr.write(f"{message}\n")
    sys.stderr.flush()


def _checked_config(config: Path | None, preset: str | None, overrides: dict[str, str], executor: str,
                    ray_address: str | None):
    """The protocol config ``run`` will execute: CONFIG or a preset, with the command-line overrides, its
    @paper-smoke/ assets prepared, checked before any work (``--dry-run`` too); raises ``ConfigError``."""
    from regurg_bench.builders.config import ConfigError
    from regurg_bench.protocol.config import check_config, load_protocol_config, preset_path
    from regurg_bench.protocol.smoke import prepare

    if preset and config:
        raise ConfigError("give a CONFIG file or --preset, not both")
    cfg = load_protocol_config(preset_path(preset) if preset else config)
    if overrides:
        cfg = cfg.with_overrides(**overrides)
    cfg = prepare(cfg)  # builds the assets a config names by @paper-smoke/ placeholders (once, cached)
    check_config(cfg, str(config or f"preset {preset or 'default'}"))
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor must be 'local' or 'ray', got {executor!r}")
    if ray_address and executor != "ray":
        raise ConfigError("--ray-address needs --executor ray")
    return cfg


def run_cmd(
    config: Annotated[Path | None, typer.Argument(
        help="Protocol YAML (see regurg_bench/protocol/example_config.yaml); none = the embedded default.")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Run folder (default: runs/protocol/NAME, NAME from the config).")] = None,
    base_model: Annotated[str | None, typer.Option("--base-model",
                                                   help="Override train.base_model (e.g. scratch:tiny, a folder).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="Override eval.backend: hf or vllm.")] = None,
    eval_lora: Annotated[str | None, typer.Option(
        "--eval-lora", help="Override eval.lora for LoRA students: 'adapter' (base + adapter, one vLLM engine "
                            "per base model) or 'merged' (each merged checkpoint on an engine of its own).")] = None,
    preset: Annotated[str | None, typer.Option(
        "--preset", help="A shipped config instead of CONFIG: 'default' (offline CPU), 'collapse' (degradation "
                         "across generations, replace vs accumulate; offline CPU), 'm2-offline' "
                         "(M2 with two Apertium generators, offline CPU), 'paper' (Europarl de-en, "
                         "LLM generators, LoRA, vLLM; GPU + internet) or 'paper-smoke' (every code path "
                         "of 'paper' shrunk for a CPU: needs the vLLM environment, scripts/setup_vllm.sh).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and an estimate of its compute "
                                                        "(TFLOP) and duration on this machine (a ~10 s "
                                                        "calibration, cached); run nothing.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="One progress bar with an ETA across all stages.")] = True,
    executor: Annotated[str, typer.Option(
        "--executor", help="Who runs the steps: 'local' (this process, and --workers processes beside it) or 'ray' (each "
                           "student's training and evaluation a Ray task with the config's `resources`; the "
                           "run folder must be on storage every node sees). Numbers do not depend on it.")] = "local",
    ray_address: Annotated[str | None, typer.Option(
        "--ray-address", help="With --executor ray: 'auto' (a running cluster), HOST:PORT, or none to start "
                              "a local cluster for this run.")] = None,
    workers: Annotated[str | None, typer.Option(
        "--workers", help="Local executor: worker processes that train and evaluate students on CPU side by "
                          "side ('auto': 2 on a machine with 2+ CPUs, else 1; 1: everything in this process; "
                          "default: $REGURG_BENCH_WORKERS or auto). Every step pins its threads, so the "
                          "numbers are the same; an evaluation is mostly per-token Python on one core, "
                          "so a second one (or a training) beside it uses the other core.")] = None,
) -> None:
    """Build matched splits, train the student matrix (REAL, REGURG, fractions, mixes, mitigations M1-M4),
    evaluate every student with the regurg_mt lm-eval tasks, and score degradation D and recovery R with
    paired-bootstrap 95% intervals. Writes results.json, report.md, report.html and scores.png.

    Every step is cached by a fingerprint of its inputs: re-running a finished run does nothing, an
    interrupted run resumes. With no CONFIG: the embedded default (en->es Bible: a pretrained base fine-tuned on human vs Apertium vs self-generated targets, 3 seeds, CPU).
    """
    import logging

    from regurg_bench.builders.config import ConfigError
    from regurg_bench.protocol.run import run_protocol

    logging.basicConfig(level=logging.WARNING)
    overrides = {"train.base_model": base_model, "eval.backend": backend, "eval.lora": eval_lora}
    try:
        from regurg_bench.protocol.executors import default_workers

        n_workers = default_workers(workers)
        cfg = _checked_config(config, preset, {k: v for k, v in overrides.items() if v}, executor, ray_address)
    except (ConfigError, ValueError) as e:
        print_error(f"{e}")
        raise typer.Exit(2) from None
    folder = out or Path("runs") / "protocol" / cfg.name
    results = run_protocol(cfg, folder, dry_run=dry_run, show_progress=progress, executor=executor,
                           ray_address=ray_address, workers=n_workers)
    if dry_run:
        return
    from rich.console import Console

    from regurg_bench.protocol.report import terminal_summary
    from regurg_bench.results import RunResults

    summary = terminal_summary(RunResults.model_validate(results), folder / "report.md")
    Console(width=max(Console().width, 120)).print(summary)


def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished `regurg-bench run` folder (with results.json).")],
    headline: Annotated[bool, typer.Option("--headline", help="Print the short Markdown summary only "
                                                             "(scores and a verdict per paper claim).")] = False,
    image_dir: Annotated[str, typer.Option("--image-dir", help="Prefix of the plot link in --headline.")] = "",
) -> None:
    """Re-render report.md, report.html and the plots of a finished run from its results.json, or print
    its headline summary (what the README shows for the embedded default)."""
    from pydantic import ValidationError

    from regurg_bench.protocol.report import headline as make_headline
    from regurg_bench.protocol.report import write_reports
    from regurg_bench.results import RunResults, describe_validation_error

    path = run_dir / "results.json"
    if not path.is_file():
        print_error(f"{path}: no results.json (is this a finished run folder?)")
        raise typer.Exit(2)
    try:
        results = RunResults.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValidationError as err:
        print_error(describe_validation_error(err, str(path)))
        raise typer.Exit(2) from None
    if headline:
        print(make_headline(results, image_dir), end="")
        return
    write_reports(results, run_dir)
    print(f"report: {run_dir / 'report.md'}")


def verify_cmd(
    run_dir: Annotated[Path | None, typer.Argument(help="A finished `regurg-bench run` folder (or use --entry).")
                       ] = None,
    entry: Annotated[Path | None, typer.Option("--entry", help="A leaderboard entry file "
                                               "(<board>/entries/<id>.json): re-run K of its students from the "
                                               "entry alone and record the outcome beside it.")] = None,
    rerun: Annotated[int, typer.Option("--rerun", "-k", min=1, help="Students to re-train and re-evaluate.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seeds the choice of students (a run folder; an entry's "
                                                     "draw is seeded by its id).")] = 0,
    eval_only: Annotated[bool, typer.Option("--eval-only", help="Re-evaluate the run's own checkpoints "
                                                                "instead of re-training (published checkpoints).")
                         ] = False,
    by: Annotated[str, typer.Option("--by", help="Who runs this --entry verification, as recorded "
                                                 "('board-ci' for the board's CI).")] = "user",
    record: Annotated[bool, typer.Option("--record/--no-record", help="Append the --entry outcome to "
                                         "<board>/verifications/<id>.json.")] = True,
    work_dir: Annotated[Path | None, typer.Option("--work-dir", help="Keep the rebuilt data and re-run "
                                                  "students here (default: a temporary folder).")] = None,
) -> None:
    """Reproduce K randomly chosen students of a run (RUN_DIR) or of a leaderboard entry (--entry) from the
    recorded config and seed: re-train them, re-evaluate them, and compare with the recorded students.
    "reproduced exactly": the logged outputs are the recorded ones (CPU training is deterministic on
    one machine); "reproduced within noise": every corpus score lies within the tolerance the run's seed
    spread gives (another machine's kernels round differently; see README, "Comparing runs across
    machines"); otherwise "failed", naming student, task, metric, difference and tolerance. With --entry
    the base model, splits and mitigation data are rebuilt from the entry's recorded config first (a few
    minutes for the default), and the students are drawn with the entry id as the seed. Prints one JSON
    line; exit 1 when any student failed, 2 on bad input."""
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.protocol.reproduce import ReproductionError, reproduce, summary

    if (run_dir is None) == (entry is None):
        print_error("give a run folder or --entry ENTRY.json (one of them)")
        raise typer.Exit(2)
    try:
        if entry is not None:
            from regurg_bench.leaderboard.rerun import verify_entry

            done = verify_entry(entry, rerun, by=by, record=record, work_dir=work_dir, say=_to_stderr)
            report = done.report
        else:
            report = reproduce(run_dir, rerun, seed, eval_only=eval_only)
    except (ReproductionError, SubmissionError) as e:
        print_error(e)
        raise typer.Exit(2) from None
    result = summary(report)
    print(json.dumps(result))
    if not result["reproduced"]:
        raise typer.Exit(1)


def compare_cmd(
    run_a: Annotated[Path, typer.Argument(help="A run folder, its results.json, or a leaderboard entry JSON.")],
    run_b: Annotated[Path, typer.Argument(help="The same for the other run (same config).")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the comparison as JSON here.")] = None,
    allow_config_change: Annotated[bool, typer.Option(
        "--allow-config-change", help="Compare runs whose config hashes differ (refused otherwise).")] = False,
) -> None:
    """Compare two runs of one config (two machines, or a run and a leaderboard entry): scores per task x
    condition x metric (difference in interval half-widths, within the seed-noise tolerance or not), the
    share of byte-identical outputs, verdict agreement with each side's robustness, and where the runs
    first diverged (base model, generators and splits, student weights, outputs). Exit 1 when a verdict
    marked robust in either run disagrees with the other's, 2 on bad input. See README, "Comparing runs
    across machines"."""
    from regurg_bench.atomic import atomic_write
    from regurg_bench.protocol.compare import CompareError, compare_runs, load_side, render

    try:
        a, b = load_side(run_a), load_side(run_b)
        result = compare_runs(a, b, allow_config_change=allow_config_change)
    except CompareError as e:
        print_error(e)
        raise typer.Exit(2) from None
    render(result)
    if json_out is not None:
        with atomic_write(json_out) as handle:
            json.dump(result, handle, indent=2, ensure_ascii=False, allow_nan=False)
            handle.write("\n")
    raise typer.Exit(result["exit_code"])


def register(app: typer.Typer) -> None:
    """Add ``run``, ``report``, ``verify`` and ``compare`` to ``app``."""
    app.command("run")(run_cmd)
    app.command("report")(report_cmd)
    app.command("verify")(verify_cmd)
    app.command("compare")(compare_cmd)
