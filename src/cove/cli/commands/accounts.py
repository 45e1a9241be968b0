"""Accounts: sign up, log in and out, who you are, your API token."""

from __future__ import annotations

from typing import Annotated

import typer

from cove.cli.app import (
    Json,
    PasswordStdin,
    app,
    auth_cmd,
    client,
    password,
)
from cove.cli.client import ApiError, Client, Profile
from cove.cli.errors import CliError
from cove.cli.output import (
    emit_json,
)


@app.command()
def signup(name: str, password_stdin: PasswordStdin = False) -> None:
    """Create an account and its personal space, and log in."""
    secret = password(password_stdin, confirm=True)
    api = client()
    result = api.request("POST", "/v1/users", json={"name": name, "password": secret})
    _login(api, name, secret)
    typer.echo(f"Created user {result['user']} with personal space {result['space']}; logged in.")


def _login(client: Client, name: str, password: str) -> None:
    token = client.request("POST", "/v1/tokens", json={"name": name, "password": password})
    Profile().save(url=client.profile.url, token=token["token"], user=name, space=name)


@app.command()
def login(
    name: Annotated[str | None, typer.Argument()] = None, password_stdin: PasswordStdin = False
) -> None:
    """Log in and save an API token for this machine."""
    if name is None:
        name = typer.prompt("User")
    _login(client(), name, password(password_stdin))
    typer.echo(f"Logged in as {name}")


@app.command()
def logout() -> None:
    """Revoke this machine's API token."""
    profile = Profile()
    if profile.token:
        try:
            Client(profile).request("DELETE", "/v1/tokens/current")
        except ApiError as err:
            if err.status != 401:
                raise
    profile.save(token=None)
    typer.echo("Logged out")


@app.command()
def whoami(json_: Json = False) -> None:
    """Show who you are logged in as."""
    me = client().request("GET", "/v1/me")
    if json_:
        emit_json(me)
    else:
        typer.echo(me["name"] + (" (platform admin)" if me["is_admin"] else ""))


@auth_cmd.command("token")
def auth_token() -> None:
    """Print your API token (the password for git pushes)."""
    token = Profile().token
    if not token:
        raise CliError("not logged in: run `cove login`")
    typer.echo(token)
