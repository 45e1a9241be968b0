"""Config vars: show, set, unset, get."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    Space,
    app_path,
    client,
    config_cmd,
)
from cove.cli.errors import CliError
from cove.cli.output import (
    render,
)


@config_cmd.command("show")
def config_show(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app's config vars: `cove config APP`."""
    found = client().request("GET", f"{app_path(space, name)}/config")
    render(found, json_, title=f"{name} config vars", fields=dict(sorted(found.items())))


def _change_config(space: str | None, name: str, changes: dict[str, str | None]) -> None:
    result = client().request("PATCH", f"{app_path(space, name)}/config", json={"vars": changes})
    where = f", released {result['release']}" if result["release"] else " (applies on deploy)"
    typer.echo(f"Updated {', '.join(changes)} on {name}{where}")


@config_cmd.command("set")
def config_set(
    name: str,
    pairs_: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...")],
    space: Space = None,
) -> None:
    """Set config vars; a deployed app restarts on a new release with no downtime."""
    changes: dict[str, str | None] = {}
    for pair in pairs_:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"cannot read {pair!r}: use KEY=VALUE")
        changes[key] = value
    _change_config(space, name, changes)


@config_cmd.command("unset")
def config_unset(name: str, keys: list[str], space: Space = None) -> None:
    """Remove config vars."""
    _change_config(space, name, dict.fromkeys(keys))


@config_cmd.command("get")
def config_get(name: str, key: str, space: Space = None) -> None:
    """Print one config var's value."""
    found = client().request("GET", f"{app_path(space, name)}/config")
    if key not in found:
        raise CliError(f"{name} has no config var {key}")
    typer.echo(found[key])
