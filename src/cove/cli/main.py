"""`cove`: the command-line client of Cove's REST API (one module per command group)."""

from __future__ import annotations

import sys

import typer

from cove.cli.app import app
from cove.cli.client import ApiError
from cove.cli.commands import (  # noqa: F401 - importing a group registers its commands
    accounts,
    apps,
    builds,
    config,
    doctor,
    domains,
    processes,
    releases,
    spaces,
)
from cove.cli.errors import CliError


def main() -> None:
    try:
        app()
    except (ApiError, CliError) as err:
        typer.echo(f" !    {err.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
