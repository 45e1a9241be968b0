"""Heroku-style plain output, or JSON with --json."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer


def emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


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
