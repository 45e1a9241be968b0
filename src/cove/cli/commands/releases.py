"""Releases: deploy an image, push source, list, roll back."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cove.cli.app import (
    Json,
    PasswordStdin,
    Space,
    app,
    app_path,
    client,
    password,
)
from cove.cli.errors import CliError
from cove.cli.output import (
    follow_events,
    render,
)
from cove.cli.upload import pack
from cove.domain.builds import MAX_UPLOAD


@app.command()
def deploy(
    name: str,
    image: str,
    space: Space = None,
    username: Annotated[str | None, typer.Option(help="registry user")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Deploy an OCI image as a new release (zero downtime)."""
    body: dict[str, Any] = {"image": image}
    if username:
        body.update(username=username, password=password(password_stdin, "Registry password: "))
    typer.echo(f"Deploying {image} to {name}...")
    release = client().request("POST", f"{app_path(space, name)}/deploys", json=body)
    typer.echo(f"Released {release['name']}: {release['url']}")


@app.command()
def push(
    name: str,
    directory: Annotated[Path, typer.Argument(help="source directory")] = Path("."),
    space: Space = None,
) -> None:
    """Upload a directory, build it (Dockerfile) and release it; output streams back."""
    cove = client()
    cove.request("GET", app_path(space, name))  # no app: say so before packing anything
    with tempfile.TemporaryFile() as packed:  # streamed from disk: memory stays flat
        size = pack(directory, packed)
        if size > MAX_UPLOAD:
            raise CliError(f"{directory} packs to {size // 2**20} MiB, more than the "
                           f"{MAX_UPLOAD // 2**20} MiB an upload may have: leave build output "
                           "and dependencies out (.coveignore, .gitignore)")
        typer.echo(f"-----> uploading {size // 1024} KiB from {directory}")
        packed.seek(0)
        follow_events(cove.stream_post(f"{app_path(space, name)}/builds", packed))


@app.command()
def releases(name: str, space: Space = None, json_: Json = False) -> None:
    """List an app's releases, newest first."""
    found = client().request("GET", f"{app_path(space, name)}/releases")
    render(
        found,
        json_,
        title=f"{name} releases",
        rows=[
            (
                r["name"] + (" *" if r["current"] else ""),
                r["description"],
                r["created_by"],
                r["created_at"][:19],
            )
            for r in found
        ],
        headings=("version", "description", "by", "when"),
    )


@app.command()
def rollback(
    name: str,
    version: Annotated[
        str | None,
        typer.Argument(help="release to roll back to, e.g. v2 (default: the previous one)"),
    ] = None,
    space: Space = None,
) -> None:
    """Roll back to an earlier release (as a new release)."""
    number = None
    if version is not None:
        digits = version.removeprefix("v")
        if not digits.isdigit():
            raise typer.BadParameter(
                f"{version!r} is not a release: give one like v2 "
                f"(`cove releases {name}` lists them)"
            )
        number = int(digits)
    release = client().request(
        "POST", f"{app_path(space, name)}/rollback", json={"version": number}
    )
    typer.echo(f"Rolled back: {release['description']} is {release['name']}")
