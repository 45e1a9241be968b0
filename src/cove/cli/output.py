"""Heroku-style plain output, or JSON with --json."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import typer

from cove.cli.errors import CliError
from cove.domain.events import Result, decode


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def render(data: Any, as_json: bool, *, title: str | None = None,
           rows: Sequence[Sequence[Any]] | None = None, headings: Sequence[str] = (),
           fields: dict[str, Any] | None = None) -> None:
    """Every command's output: the API's data as JSON with --json, else a title and a
    table or aligned fields for people."""
    if as_json:
        emit_json(data)
        return
    if title:
        header(title)
    if rows is not None:
        table(rows, headings)
    if fields is not None:
        pairs(fields)


def header(title: str) -> None:
    typer.echo(f"=== {title}")


def table(rows: Sequence[Sequence[Any]], headings: Sequence[str]) -> None:
    cells = [[str(h) for h in headings]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headings))]
    for n, row in enumerate(cells):
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            typer.echo("  ".join("─" * w for w in widths))


def pairs(items: dict[str, Any]) -> None:
    width = max((len(k) for k in items), default=0)
    for key, value in items.items():
        typer.echo(f"{(key + ':').ljust(width + 1)} {value}")


def formation_text(formation: dict[str, Any]) -> str:
    def one(kind: str, proc: dict[str, Any]) -> str:
        auto = proc.get("autoscale")
        count = f"{auto['min']}..{auto['max']}" if auto else proc["count"]
        return f"{kind}={count}:{proc['size']}"

    return " ".join(one(k, v) for k, v in formation.items()) or "-"


def follow_events(lines: Iterator[str]) -> None:
    """Print a stream's output as it comes; exit 1 unless its result says it succeeded."""
    result = None
    for line in lines:
        event = decode(line)
        if isinstance(event, Result):
            result = event
        else:
            typer.echo(event.text)
    if result is None:
        raise CliError("the stream ended without a result: see `cove builds`")
    if not result.ok:
        raise typer.Exit(1)
