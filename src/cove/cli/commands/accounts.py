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
    render,
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


@auth_cmd.command("tokens")
def auth_tokens(json_: Json = False) -> None:
    """List your API tokens (where you logged in) and when each expires."""
    found = client().request("GET", "/v1/tokens")
    render(found, json_, title="API tokens",
           rows=[(t["id"], t["description"], t["created_at"][:19], t["expires_at"][:19])
                 for t in found],
           headings=("id", "description", "created", "expires"))


@auth_cmd.command("revoke")
def auth_revoke(token_id: Annotated[int, typer.Argument(help="the id `cove auth tokens` shows")]
                ) -> None:
    """End one of your API tokens (e.g. one on a lost laptop)."""
    client().request("DELETE", f"/v1/tokens/{token_id}")
    typer.echo(f"Revoked token {token_id}")


@auth_cmd.command("passwd")
def auth_passwd(password_stdin: PasswordStdin = False) -> None:
    """Change your password; your other API tokens end (this one stays logged in).
    With --password-stdin: the current password, then the new one, a line each."""
    current = password(password_stdin, "Current password: ")
    new = password(password_stdin, "New password: ", confirm=True)
    result = client().request("PUT", "/v1/me/password", json={"current": current, "new": new})
    typer.echo(f"Password changed; {result['tokens_ended']} other tokens ended")
