"""Builds, the app's git repository, and the stacks buildpacks use."""

from __future__ import annotations

import subprocess
from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    Space,
    app_path,
    builds_cmd,
    client,
    git_cmd,
    space_of,
    stacks_cmd,
)
from cove.cli.client import Profile
from cove.cli.output import (
    follow_events,
    render,
)


@git_cmd.command("remote")
def git_remote(
    name: str,
    space: Space = None,
    remote: Annotated[str, typer.Option(help="remote name")] = "cove",
) -> None:
    """Print the app's git URL and, inside a git work tree, add it as a remote."""
    profile = Profile()
    user = profile.data.get("user", "")
    base = profile.url.replace("://", f"://{user}@", 1) if user else profile.url
    url = f"{base}/git/{space_of(space)}/{name}.git"
    client().request("GET", app_path(space, name))  # it must exist and be yours
    inside = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], capture_output=True, text=True
    )
    if inside.returncode == 0:
        subprocess.run(["git", "remote", "remove", remote], capture_output=True)
        subprocess.run(["git", "remote", "add", remote, url], check=True)
        typer.echo(f"Added git remote {remote}: {url}")
        typer.echo("Push with `git push cove main`; the password is `cove auth token`.")
    else:
        typer.echo(url)


@builds_cmd.command("list")
def builds_list(
    name: str,
    log: Annotated[
        int | None, typer.Option("--log", help="print the output of this build number")
    ] = None,
    space: Space = None,
    json_: Json = False,
) -> None:
    """List an app's builds (`cove builds APP`), or print one's output with --log N."""
    if log is not None:
        builds_log(name, log, space)
        return
    found = client().request("GET", f"{app_path(space, name)}/builds")
    render(
        found,
        json_,
        title=f"{name} builds",
        rows=[
            (
                b["number"],
                b["status"],
                b["release"] or "-",
                b["created_by"],
                b["created_at"][:19],
                b["error"][:60],
            )
            for b in found
        ],
        headings=("build", "status", "release", "by", "when", "error"),
    )


@builds_cmd.command("log")
def builds_log(name: str, number: int, space: Space = None) -> None:
    """Print the output of one build: `cove builds log APP 3`."""
    typer.echo(client().request_text("GET", f"{app_path(space, name)}/builds/{number}/log"))


@stacks_cmd.command("list")
def stacks_list(json_: Json = False) -> None:
    """Show the build and run images and whether they are built."""
    found = client().request("GET", "/v1/stacks")
    render(
        found,
        json_,
        title="stacks",
        rows=[
            (
                s["role"],
                s["image"],
                s["id"] or "not built: `cove stacks build`",
                s["created"] or "-",
                f"{s['size_mb']} MiB" if s["size_mb"] else "-",
            )
            for s in found
        ],
        headings=("role", "image", "id", "created", "size"),
    )


@stacks_cmd.command("build")
def stacks_build() -> None:
    """(Re)make the build and run images from Debian packages (platform admins)."""
    follow_events(client().stream("/v1/stacks/build", method="POST"))
