"""The ``plinth`` command: start a project (``init``), ``serve`` an app, manage
its migrations (``db``), and check its connection (``doctor``).

    _common   output, --app, errors as one line, a connection to the app's database
    db        plinth db upgrade/downgrade/current/history/check/lint/reset/revision
    doctor    plinth doctor
    init      plinth init: a new project with one app (files in scaffold/)
    serve     plinth serve

Every command takes the app directory (``--app``, default: the current one),
reads ``DATABASE_URL`` (the embedded server when unset, outside production),
and turns a `PlinthError` into one line on stderr and exit code 1. The top
layer with `plinth.testing`: nothing in Plinth imports it.
"""

from __future__ import annotations

import sys

import typer

from plinth.cli.db import db
from plinth.cli.doctor import doctor
from plinth.cli.init import init
from plinth.cli.serve import serve

__all__ = ["cli", "main"]

cli = typer.Typer(
    name="plinth",
    help="The async PostgreSQL foundation for FastAPI.",
    no_args_is_help=True,
    # Locals in a traceback could include a DATABASE_URL with its password.
    pretty_exceptions_show_locals=False,
)
cli.add_typer(db, name="db")
cli.command()(init)
cli.command()(doctor)
cli.command()(serve)


def main() -> None:
    """Console-script entry point."""
    sys.exit(cli())
