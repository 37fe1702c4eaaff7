"""``python -m regurg_bench.checks ...``: the ``check`` command on its own (same options)."""

import typer

from regurg_bench.checks import commands

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
commands.register(app)

if __name__ == "__main__":
    app()
