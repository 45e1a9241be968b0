"""The `cove` command tree, its shared options and the helpers every command group uses."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cove.cli.client import Client, Profile
from cove.cli.errors import CliError


class DefaultGroup(TyperGroup):
    """A group whose first word may be omitted: `cove config APP` means `cove config show APP`."""

    default = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


class ShowGroup(DefaultGroup):
    default = "show"


app = typer.Typer(help="Cove: deploy and run apps on your own platform.", no_args_is_help=True,
                  add_completion=False)
apps_cmd = typer.Typer(help="List, create, inspect and destroy apps.", cls=DefaultGroup)
config_cmd = typer.Typer(help="Show and change an app's config vars.", cls=ShowGroup)
domains_cmd = typer.Typer(help="Custom domains of an app.", cls=DefaultGroup)
spaces_cmd = typer.Typer(help="Spaces (tenants) you belong to.", cls=DefaultGroup)
members_cmd = typer.Typer(help="Members of a space and their roles.", cls=DefaultGroup)
git_cmd = typer.Typer(help="The app's git repository.")
auth_cmd = typer.Typer(help="Your credentials.")
builds_cmd = typer.Typer(help="An app's builds and their output.", cls=DefaultGroup)
stacks_cmd = typer.Typer(help="The build and run images buildpacks use.", cls=DefaultGroup)
for group, name in ((apps_cmd, "apps"), (config_cmd, "config"), (domains_cmd, "domains"),
                    (spaces_cmd, "spaces"), (members_cmd, "members"), (git_cmd, "git"),
                    (auth_cmd, "auth"), (builds_cmd, "builds"), (stacks_cmd, "stacks")):
    app.add_typer(group, name=name)

Space = Annotated[str | None, typer.Option("--space", "-s", help="space (default: current)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="read the password from standard input")]


def client() -> Client:
    return Client(Profile())


def space_of(space: str | None) -> str:
    profile = Profile()
    chosen = space or profile.data.get("space") or profile.data.get("user")
    if not chosen:
        raise CliError("no current space: log in, or pass --space")
    return str(chosen)


def app_path(space: str | None, name: str) -> str:
    return f"/v1/spaces/{space_of(space)}/apps/{name}"


def password(stdin: bool, prompt: str = "Password: ", confirm: bool = False) -> str:
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    entered = getpass.getpass(prompt)
    if confirm and getpass.getpass("Password (again): ") != entered:
        raise CliError("the passwords differ")
    return entered


def confirm_destroy(name: str, yes: bool) -> None:
    """Destroying asks for the name at a terminal, unless --yes."""
    if not yes and sys.stdin.isatty() and typer.prompt(f"Type {name} to destroy it") != name:
        raise CliError("not destroyed")
