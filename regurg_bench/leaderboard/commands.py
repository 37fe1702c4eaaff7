"""``regurg-bench submit`` and ``leaderboard build|validate|migrate|ci``; wired in with ``register(app)``.

A rejected submission or entry exits with status 1 and one line ``error: <why>`` on stderr (no
traceback); bad command-line usage exits 2 as usual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RootOpt = Annotated[Path, typer.Option("--root", help="Folder holding the leaderboards (one sub-folder each).")]
NameArg = Annotated[str, typer.Argument(help="Leaderboard name (a folder under --root; letters, digits, . _ -).")]


def _fail(err: Exception) -> typer.Exit:
    # Plain echo, not rich: messages hold brackets and long paths that markup and wrapping would mangle.
    typer.echo(f"error: {err}" if not isinstance(err, OSError) else f"error: cannot read or write a file: {err}",
               err=True)
    return typer.Exit(1)


def submit_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A finished `regurg-bench run` folder (with results.json and "
                                                 "the lm-eval samples under evals/).")],
    leaderboard: Annotated[str, typer.Option("--leaderboard", "-l", help="Leaderboard name.")],
    root: RootOpt = Path("leaderboards"),
    model_name: Annotated[str | None, typer.Option(
        "--model-name", "-m", help="Name shown on the leaderboard (default: the run's name); letters, digits, "
                                   ". _ -.")] = None,
) -> None:
    """Check a protocol run and add it to a leaderboard as `<root>/<NAME>/entries/<entry-id>.json`.

    Checks: results.json schema and size, no NaN/Infinity, provenance (sacrebleu signatures, lm-eval
    version, known task versions, the published test-set fingerprints), the rules of a comparable entry
    (full test set, required conditions, plausibility), every score, interval, D and R recomputed from the
    logged samples (inside RUN_DIR), and no duplicate entry. The samples are stored beside the board as
    the entry's evidence (`<root>/<NAME>/evidence/<sha256>.jsonl.gz`). Exit 1 with the reason (and the
    rule) when the run is rejected. The files are only read as JSON: nothing in a submission is executed.
    """
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.leaderboard.submit import submit

    try:
        path = submit(run_dir, leaderboard, root, model_name)
    except (SubmissionError, OSError) as err:
        raise _fail(err) from None
    typer.echo(f"accepted: {path}")
    typer.echo(f"next: regurg-bench leaderboard build {leaderboard} --root {root}")


def build_cmd(name: NameArg, root: RootOpt = Path("leaderboards")) -> None:
    """Re-check every entry, then write README.md, index.html (static, sortable) and scores.png.

    The same entries always give byte-identical files.
    """
    from regurg_bench.leaderboard.render import build
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.leaderboard.submit import entries_dir, validate_leaderboard

    try:
        entries = validate_leaderboard(root, name)
    except (SubmissionError, OSError) as err:
        raise _fail(err) from None
    for path in build(entries_dir(root, name).parent, name, entries):
        typer.echo(f"wrote {path}")


def validate_cmd(name: NameArg, root: RootOpt = Path("leaderboards")) -> None:
    """Re-check every entry file of a leaderboard: rebuilt from its evidence under every rule (schema, names,
    ids, task versions, test-set fingerprints, signatures, every number, plausibility, duplicates); exit 1
    naming the first bad file and the rule."""
    from regurg_bench.leaderboard.schema import SubmissionError
    from regurg_bench.leaderboard.submit import validate_leaderboard

    try:
        entries = validate_leaderboard(root, name)
    except (SubmissionError, OSError) as err:
        raise _fail(err) from None
    typer.echo(f"{name}: {len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, all valid")


def migrate_cmd(
    name: NameArg,
    root: RootOpt = Path("leaderboards"),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; write nothing.")] = False,
) -> None:
    """Bring every entry to the newest entry schema where that changes anything: a v2 entry whose evidence
    holds a collapse curve becomes a v3 entry carrying it (new id; its verification records move with it).
    Every other entry keeps its bytes; a second run changes nothing. The board is validated first (each
    entry under its own schema version) and after. Then rebuild the pages: `leaderboard build NAME`."""
    from regurg_bench.leaderboard.migrate import migrate_leaderboard
    from regurg_bench.leaderboard.schema import SubmissionError

    try:
        done = migrate_leaderboard(root, name, dry_run=dry_run)
    except (SubmissionError, OSError) as err:
        raise _fail(err) from None
    for m in done:
        typer.echo(f"{'would migrate' if dry_run else 'migrated'} {m.old_id} ({m.old_schema}) -> {m.new_id} "
                   f"({m.new_schema})")
    typer.echo(f"{name}: {len(done)} entr{'y' if len(done) == 1 else 'ies'} "
               f"{'to migrate' if dry_run else 'migrated'}, every other entry already in its newest schema")


def ci_cmd(
    name: NameArg,
    root: RootOpt = Path("leaderboards"),
    rerun: Annotated[int, typer.Option("--rerun", "-k", min=1, help="Students to re-run per entry.")] = 2,
    budget_min: Annotated[float, typer.Option("--budget-min", min=0.0, help="Minutes of re-running this job may "
                                              "spend; an entry estimated not to fit stays unverified.")] = 40.0,
    changed_since: Annotated[str | None, typer.Option("--changed-since", help="A git revision (the pull "
                                                      "request's base): entries whose entry or verification "
                                                      "file changed since it are re-run even if verified.")
                             ] = None,
) -> None:
    """The board's CI job (leaderboards/ci/run.sh): validate every entry, then re-run K students of each entry
    the board's CI has not verified yet (`verify --entry --by board-ci`), recording each outcome in
    `<NAME>/verifications/`. Bases that are not CPU-sized, and entries that do not fit the budget, stay
    unverified with the runner they need. Exit 1 when an entry is invalid or a re-run failed."""
    from regurg_bench.leaderboard.board_ci import board_ci
    from regurg_bench.leaderboard.schema import SubmissionError

    try:
        outcome = board_ci(root, name, rerun=rerun, budget_s=budget_min * 60, changed_since=changed_since,
                           say=typer.echo)
    except (SubmissionError, OSError) as err:
        raise _fail(err) from None
    typer.echo(f"{name}: {outcome.valid} valid, {len(outcome.verified)} verified, {len(outcome.skipped)} "
               f"unverified, {len(outcome.failed)} failed" + (f" ({', '.join(outcome.failed)})" if outcome.failed
                                                              else ""))
    raise typer.Exit(outcome.exit_code)


def leaderboard_group() -> typer.Typer:
    """The ``leaderboard`` command group: ``build``, ``validate``, ``migrate`` and ``ci``."""
    group = typer.Typer(
        help="Render and re-check leaderboards (`leaderboards/<NAME>/entries/*.json`).\n\n"
             "`regurg-bench submit RUN_DIR --leaderboard NAME` adds an entry; "
             "`regurg-bench leaderboard build NAME` writes README.md, index.html and scores.png; "
             "`regurg-bench leaderboard validate NAME` re-checks every entry (for CI); "
             "`regurg-bench leaderboard migrate NAME` upgrades entries to the newest entry schema.",
        no_args_is_help=True,
        rich_markup_mode="markdown",
    )
    group.command("build")(build_cmd)
    group.command("validate")(validate_cmd)
    group.command("migrate")(migrate_cmd)
    group.command("ci")(ci_cmd)
    return group


def register(app: typer.Typer) -> None:
    """Add ``submit`` and the ``leaderboard`` command group to ``app``."""
    app.add_typer(leaderboard_group(), name="leaderboard")
    app.command("submit")(submit_cmd)
