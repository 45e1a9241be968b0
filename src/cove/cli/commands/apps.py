"""Apps: list, create, inspect, update and destroy."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    Space,
    app_path,
    apps_cmd,
    client,
    confirm_destroy,
    space_of,
)
from cove.cli.output import (
    formation_text,
    render,
)


@apps_cmd.command("list")
def apps_list(space: Space = None, json_: Json = False) -> None:
    """List the apps of a space."""
    found = client().request("GET", f"/v1/spaces/{space_of(space)}/apps")
    render(
        found,
        json_,
        title=f"Apps in {space_of(space)}",
        rows=[
            (a["name"], a["release"] or "-", formation_text(a["formation"]), a["url"])
            for a in found
        ],
        headings=("name", "release", "formation", "url"),
    )


@apps_cmd.command("create")
def apps_create(
    name: str,
    space: Space = None,
    health_path: Annotated[str | None, typer.Option(help="health check path")] = None,
    health_timeout: Annotated[
        int | None, typer.Option(help="seconds a new instance has to become healthy")
    ] = None,
) -> None:
    """Create an app."""
    result = client().request(
        "POST",
        f"/v1/spaces/{space_of(space)}/apps",
        json={"name": name, "health_path": health_path, "health_timeout": health_timeout},
    )
    typer.echo(f"Created {name} in {space_of(space)}: {result['url']}")


@apps_cmd.command("info")
def apps_info(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app: release, URL, formation, domains, instances."""
    info = client().request("GET", app_path(space, name))
    render(
        info,
        json_,
        title=name,
        fields={
            "Space": info["space"],
            "URL": info["url"],
            "Release": info["release"] or "-",
            "Image": info["image"] or "-",
            "Formation": formation_text(info["formation"]),
            "Domains": ", ".join(info["domains"]) or "-",
            "Health check": f"{info['health_check']['path']} "
            f"(timeout {info['health_check']['timeout']}s)",
        },
    )


@apps_cmd.command("update")
def apps_update(
    name: str,
    space: Space = None,
    health_path: Annotated[str | None, typer.Option()] = None,
    health_timeout: Annotated[int | None, typer.Option()] = None,
) -> None:
    """Change an app's health check."""
    client().request(
        "PATCH",
        app_path(space, name),
        json={"health_path": health_path, "health_timeout": health_timeout},
    )
    typer.echo(f"Updated {name}")


@apps_cmd.command("destroy")
def apps_destroy(
    name: str,
    space: Space = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
) -> None:
    """Destroy an app: its instances, releases, config and domains."""
    confirm_destroy(name, yes)
    client().request("DELETE", app_path(space, name))
    typer.echo(f"Destroyed {name}")
