"""Custom domains of an app."""

from __future__ import annotations

import typer

from cove.cli.app import (
    Json,
    Space,
    app_path,
    client,
    domains_cmd,
)
from cove.cli.output import (
    emit_json,
    header,
)


@domains_cmd.command("list")
def domains_list(name: str, space: Space = None, json_: Json = False) -> None:
    """List an app's custom domains: `cove domains APP`."""
    found = client().request("GET", f"{app_path(space, name)}/domains")
    if json_:
        emit_json(found)
        return
    header(f"{name} domains")
    for hostname in found:
        typer.echo(hostname)


@domains_cmd.command("add")
def domains_add(name: str, hostname: str, space: Space = None) -> None:
    """Route a custom domain to an app."""
    client().request("POST", f"{app_path(space, name)}/domains", json={"hostname": hostname})
    typer.echo(f"Added {hostname} to {name}: point its DNS at this Cove's router")


@domains_cmd.command("remove")
def domains_remove(name: str, hostname: str, space: Space = None) -> None:
    """Remove a custom domain."""
    client().request("DELETE", f"{app_path(space, name)}/domains/{hostname}")
    typer.echo(f"Removed {hostname} from {name}")
