"""Spaces, their members, quota and audit log."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    app,
    client,
    confirm_destroy,
    members_cmd,
    space_of,
    spaces_cmd,
)
from cove.cli.client import Profile
from cove.cli.output import (
    render,
)


@spaces_cmd.command("list")
def spaces_list(json_: Json = False) -> None:
    """List your spaces with usage against quota."""
    found = client().request("GET", "/v1/spaces")
    current = Profile().data.get("space")
    render(
        found,
        json_,
        title="Spaces",
        rows=[
            (
                ("* " if s["name"] == current else "  ") + s["name"],
                s["role"],
                f"{s['usage']['apps']}/{s['quota']['apps']}",
                f"{s['usage']['instances']}/{s['quota']['instances']}",
                f"{s['usage']['memory_mb']}/{s['quota']['memory_mb']} MB",
            )
            for s in found
        ],
        headings=("space", "role", "apps", "instances", "memory"),
    )


@spaces_cmd.command("create")
def spaces_create(
    name: str,
    pool: Annotated[
        str | None,
        typer.Option(help="pool to place it on, e.g. a Kubernetes cluster (platform admins)"),
    ] = None,
) -> None:
    """Create a team space from the space template."""
    client().request("POST", "/v1/spaces", json={"name": name, "pool": pool})
    typer.echo(f"Created space {name}; `cove spaces use {name}` to make it current")


@spaces_cmd.command("use")
def spaces_use(name: str) -> None:
    """Make a space the current one for later commands."""
    client().request("GET", f"/v1/spaces/{name}")
    Profile().save(space=name)
    typer.echo(f"Now using space {name}")


@spaces_cmd.command("info")
def spaces_info(name: Annotated[str | None, typer.Argument()] = None, json_: Json = False) -> None:
    """Show a space: quota and usage, limits, network and security profile."""
    info = client().request("GET", f"/v1/spaces/{space_of(name)}")
    usage, quota = info["usage"], info["quota"]
    render(
        info,
        json_,
        title=info["name"],
        fields={
            "Your role": info["role"],
            "Pool": info["pool"],
            "Apps": f"{usage['apps']} of {quota['apps']}",
            "Instances": f"{usage['instances']} of {quota['instances']}",
            "Memory": f"{usage['memory_mb']} of {quota['memory_mb']} MB",
            "CPU": f"{usage['cpu_millis']} of {quota['cpu_millis']} millicores",
            "Default size": info["limits"]["default_size"],
            "Max size": info["limits"]["max_size"],
            "Network": "deny by default; allow same space, router, DNS",
            "Security": info["security"]["profile"],
        },
    )


@spaces_cmd.command("quota")
def spaces_quota(
    name: str,
    changes: Annotated[
        list[str],
        typer.Argument(
            metavar="KEY=N...", help="e.g. apps=20 memory_mb=8192 (platform admins only)"
        ),
    ],
) -> None:
    """Change a space's quota (platform admins only)."""
    body = {}
    for change in changes:
        key, _, value = change.partition("=")
        if not value.isdigit():
            raise typer.BadParameter(f"cannot read {change!r}: use KEY=N")
        body[key] = int(value)
    result = client().request("PUT", f"/v1/spaces/{name}/quota", json=body)
    typer.echo("Quota: " + " ".join(f"{k}={v}" for k, v in result.items()))


@spaces_cmd.command("destroy")
def spaces_destroy(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Destroy a team space and everything in it."""
    confirm_destroy(name, yes)
    client().request("DELETE", f"/v1/spaces/{name}")
    typer.echo(f"Destroyed space {name}")


@members_cmd.command("list")
def members_list(
    space: Annotated[str | None, typer.Argument()] = None, json_: Json = False
) -> None:
    """List a space's members."""
    found = client().request("GET", f"/v1/spaces/{space_of(space)}/members")
    render(found, json_, rows=[(m["user"], m["role"]) for m in found], headings=("user", "role"))


@members_cmd.command("add")
def members_add(
    space: str,
    user: str,
    role: Annotated[str, typer.Option(help="admin, developer or viewer")] = "developer",
) -> None:
    """Add a member to a space (or change their role)."""
    client().request("PUT", f"/v1/spaces/{space}/members/{user}", json={"role": role})
    typer.echo(f"{user} is now {role} in {space}")


@members_cmd.command("remove")
def members_remove(space: str, user: str) -> None:
    """Remove a member from a space."""
    client().request("DELETE", f"/v1/spaces/{space}/members/{user}")
    typer.echo(f"Removed {user} from {space}")


@app.command()
def audit(
    space: Annotated[str | None, typer.Argument()] = None, json_: Json = False, limit: int = 50
) -> None:
    """Show a space's audit log (space admins)."""
    found = client().request("GET", f"/v1/spaces/{space_of(space)}/audit", params={"limit": limit})
    render(
        found,
        json_,
        rows=[(a["created_at"][:19], a["actor"], a["action"], a["target"]) for a in found],
        headings=("when", "actor", "action", "target"),
    )
