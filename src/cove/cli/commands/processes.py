"""Instances and scale: ps, scale, autoscale, logs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cove.cli.app import (
    Json,
    Space,
    app,
    app_path,
    client,
)
from cove.cli.output import (
    formation_text,
    render,
)


@app.command()
def ps(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app's instances."""
    found = client().request("GET", f"{app_path(space, name)}/instances")
    render(
        found,
        json_,
        title=f"{name} instances",
        rows=[(i["name"], i["state"], i["release"], (i["started_at"] or "")[:19]) for i in found],
        headings=("instance", "state", "release", "since"),
    )


@app.command()
def scale(
    name: str,
    changes: Annotated[list[str], typer.Argument(help="TYPE=COUNT, TYPE=COUNT:SIZE or TYPE=:SIZE")],
    space: Space = None,
) -> None:
    """Scale process types, e.g. `cove scale hello web=3 worker=1:large`."""
    body: dict[str, dict[str, Any]] = {}
    for change in changes:
        kind, sep, value = change.partition("=")
        count, _, size = value.partition(":")
        if not sep or (count and not count.isdigit()):
            raise typer.BadParameter(f"cannot read {change!r}: use TYPE=COUNT[:SIZE]")
        body[kind] = {"count": int(count) if count else None, "size": size or None}
    result = client().request("PATCH", f"{app_path(space, name)}/formation", json=body)
    typer.echo(f"Scaled {name}: {formation_text(result)}")


@app.command()
def autoscale(
    name: str,
    process: Annotated[str, typer.Argument(help="process type")] = "web",
    min_: Annotated[int, typer.Option("--min", help="fewest instances")] = 1,
    max_: Annotated[int, typer.Option("--max", help="most instances")] = 3,
    cpu: Annotated[int, typer.Option(help="target CPU use, percent")] = 70,
    off: Annotated[bool, typer.Option("--off", help="stop autoscaling")] = False,
    space: Space = None,
) -> None:
    """Let the pool scale a process type between --min and --max (where supported)."""
    path = f"{app_path(space, name)}/formation/{process}/autoscale"
    if off:
        result = client().request("DELETE", path)
    else:
        result = client().request("PUT", path, json={"min": min_, "max": max_, "cpu_percent": cpu})
    typer.echo(f"{name}: {formation_text(result)}")


@app.command()
def logs(
    name: str,
    space: Space = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming")] = False,
    num: Annotated[int, typer.Option("--num", "-n", help="lines of history")] = 100,
) -> None:
    """Show (and with -f, stream) an app's logs."""
    for line in client().stream(f"{app_path(space, name)}/logs", tail=num, follow=follow):
        typer.echo(line)
