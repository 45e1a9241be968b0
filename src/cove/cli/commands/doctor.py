"""Production-readiness checks."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    Space,
    app,
    app_path,
    client,
    space_of,
)
from cove.cli.output import (
    emit_json,
    header,
)

STATUS_MARK = {"pass": "pass", "warn": "warn", "fail": "FAIL"}


@app.command()
def doctor(
    name: Annotated[str | None, typer.Argument(help="app (default: the space only)")] = None,
    space: Space = None,
    json_: Json = False,
) -> None:
    """Production-readiness checks of the platform and of an app (exit 1 on a failure)."""
    path = app_path(space, name) if name else f"/v1/spaces/{space_of(space)}"
    report = client().request("GET", f"{path}/doctor")
    if json_:
        emit_json(report)
    else:
        header(f"Doctor: {name + ' in ' if name else ''}{report['space']}")
        for check in report["checks"]:
            line = f"{STATUS_MARK[check['status']]}  {check['name']} — {check['detail']}"
            typer.echo(line)
            if check["status"] != "pass":
                typer.echo(f"      why: {check['why']}")
                typer.echo(f"      fix: {check['fix']}")
        counts = {s: sum(c["status"] == s for c in report["checks"]) for s in STATUS_MARK}
        typer.echo(f"{counts['pass']} passed, {counts['warn']} warnings, {counts['fail']} failed")
    if report["status"] == "fail":
        raise typer.Exit(1)
