"""`cove`: the command-line client of Cove's REST API."""

from __future__ import annotations

import getpass
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from cove.cli.client import ApiError, Client, Profile
from cove.cli.output import emit_json, header, pairs, table
from cove.cli.upload import pack


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
app.add_typer(apps_cmd, name="apps")
app.add_typer(config_cmd, name="config")
app.add_typer(domains_cmd, name="domains")
app.add_typer(spaces_cmd, name="spaces")
app.add_typer(members_cmd, name="members")

Space = Annotated[str | None, typer.Option("--space", "-s", help="space (default: current)")]
Json = Annotated[bool, typer.Option("--json", help="print JSON")]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin",
                                             help="read the password from standard input")]


def _client() -> Client:
    return Client(Profile())


def _space(space: str | None) -> str:
    profile = Profile()
    chosen = space or profile.data.get("space") or profile.data.get("user")
    if not chosen:
        raise ApiError(0, "no_space", "no current space: log in, or pass --space")
    return str(chosen)


def _app_path(space: str | None, name: str) -> str:
    return f"/v1/spaces/{_space(space)}/apps/{name}"


def _password(stdin: bool, prompt: str = "Password: ", confirm: bool = False) -> str:
    if stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass(prompt)
    if confirm and getpass.getpass("Password (again): ") != password:
        raise ApiError(0, "mismatch", "the passwords differ")
    return password


# -- accounts ------------------------------------------------------------------------------

@app.command()
def signup(name: str, password_stdin: PasswordStdin = False) -> None:
    """Create an account and its personal space, and log in."""
    password = _password(password_stdin, confirm=True)
    client = _client()
    result = client.request("POST", "/v1/users", json={"name": name, "password": password})
    _login(client, name, password)
    typer.echo(f"Created user {result['user']} with personal space {result['space']}; "
               "logged in.")


def _login(client: Client, name: str, password: str) -> None:
    token = client.request("POST", "/v1/tokens", json={"name": name, "password": password})
    Profile().save(url=client.profile.url, token=token["token"], user=name, space=name)


@app.command()
def login(name: Annotated[str | None, typer.Argument()] = None,
          password_stdin: PasswordStdin = False) -> None:
    """Log in and save an API token for this machine."""
    if name is None:
        name = typer.prompt("User")
    _login(_client(), name, _password(password_stdin))
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
    me = _client().request("GET", "/v1/me")
    if json_:
        emit_json(me)
    else:
        typer.echo(me["name"] + (" (platform admin)" if me["is_admin"] else ""))


# -- doctor --------------------------------------------------------------------------------

STATUS_MARK = {"pass": "pass", "warn": "warn", "fail": "FAIL"}


@app.command()
def doctor(name: Annotated[str | None, typer.Argument(help="app (default: the space only)")]
           = None, space: Space = None, json_: Json = False) -> None:
    """Production-readiness checks of the platform and of an app (exit 1 on a failure)."""
    path = _app_path(space, name) if name else f"/v1/spaces/{_space(space)}"
    report = _client().request("GET", f"{path}/doctor")
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
        typer.echo(f"{counts['pass']} passed, {counts['warn']} warnings, "
                   f"{counts['fail']} failed")
    if report["status"] == "fail":
        raise typer.Exit(1)


# -- apps ----------------------------------------------------------------------------------

@apps_cmd.command("list")
def apps_list(space: Space = None, json_: Json = False) -> None:
    """List the apps of a space."""
    found = _client().request("GET", f"/v1/spaces/{_space(space)}/apps")
    if json_:
        emit_json(found)
        return
    header(f"Apps in {_space(space)}")
    table([(a["name"], a["release"] or "-", _scale_text(a["formation"]), a["url"])
           for a in found], ("name", "release", "formation", "url"))


def _scale_text(formation: dict[str, Any]) -> str:
    def one(kind: str, proc: dict[str, Any]) -> str:
        auto = proc.get("autoscale")
        count = f"{auto['min']}..{auto['max']}" if auto else proc["count"]
        return f"{kind}={count}:{proc['size']}"

    return " ".join(one(k, v) for k, v in formation.items()) or "-"


@apps_cmd.command("create")
def apps_create(name: str, space: Space = None,
                health_path: Annotated[str | None, typer.Option(help="health check path")] = None,
                health_timeout: Annotated[int | None, typer.Option(
                    help="seconds a new instance has to become healthy")] = None) -> None:
    """Create an app."""
    result = _client().request("POST", f"/v1/spaces/{_space(space)}/apps", json={
        "name": name, "health_path": health_path, "health_timeout": health_timeout})
    typer.echo(f"Created {name} in {_space(space)}: {result['url']}")


@apps_cmd.command("info")
def apps_info(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app: release, URL, formation, domains, instances."""
    info = _client().request("GET", _app_path(space, name))
    if json_:
        emit_json(info)
        return
    header(name)
    pairs({"Space": info["space"], "URL": info["url"], "Release": info["release"] or "-",
           "Image": info["image"] or "-", "Formation": _scale_text(info["formation"]),
           "Domains": ", ".join(info["domains"]) or "-",
           "Health check": f"{info['health_check']['path']} "
                           f"(timeout {info['health_check']['timeout']}s)"})


@apps_cmd.command("update")
def apps_update(name: str, space: Space = None,
                health_path: Annotated[str | None, typer.Option()] = None,
                health_timeout: Annotated[int | None, typer.Option()] = None) -> None:
    """Change an app's health check."""
    _client().request("PATCH", _app_path(space, name), json={
        "health_path": health_path, "health_timeout": health_timeout})
    typer.echo(f"Updated {name}")


@apps_cmd.command("destroy")
def apps_destroy(name: str, space: Space = None,
                 yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False
                 ) -> None:
    """Destroy an app: its instances, releases, config and domains."""
    if not yes and sys.stdin.isatty() and typer.prompt(
            f"Type {name} to destroy it") != name:
        raise ApiError(0, "aborted", "not destroyed")
    _client().request("DELETE", _app_path(space, name))
    typer.echo(f"Destroyed {name}")


# -- deploys, releases ----------------------------------------------------------------------

@app.command()
def deploy(name: str, image: str, space: Space = None,
           username: Annotated[str | None, typer.Option(help="registry user")] = None,
           password_stdin: PasswordStdin = False) -> None:
    """Deploy an OCI image as a new release (zero downtime)."""
    body: dict[str, Any] = {"image": image}
    if username:
        body.update(username=username, password=_password(password_stdin, "Registry password: "))
    typer.echo(f"Deploying {image} to {name}...")
    release = _client().request("POST", f"{_app_path(space, name)}/deploys", json=body)
    typer.echo(f"Released {release['name']}: {release['url']}")


@app.command()
def push(name: str, directory: Annotated[Path, typer.Argument(help="source directory")] = Path("."),
         space: Space = None) -> None:
    """Upload a directory, build it (Dockerfile) and release it; output streams back."""
    data = pack(directory)
    typer.echo(f"-----> uploading {len(data) // 1024} KiB from {directory}")
    last = ""
    for line in _client().stream_post(f"{_app_path(space, name)}/builds", data):
        typer.echo(line)
        last = line
    if not last.startswith("==>") or " failed" in last:
        raise typer.Exit(1)


git_cmd = typer.Typer(help="The app's git repository.")
app.add_typer(git_cmd, name="git")
auth_cmd = typer.Typer(help="Your credentials.")
app.add_typer(auth_cmd, name="auth")


@git_cmd.command("remote")
def git_remote(name: str, space: Space = None,
               remote: Annotated[str, typer.Option(help="remote name")] = "cove") -> None:
    """Print the app's git URL and, inside a git work tree, add it as a remote."""
    profile = Profile()
    user = profile.data.get("user", "")
    base = profile.url.replace("://", f"://{user}@", 1) if user else profile.url
    url = f"{base}/git/{_space(space)}/{name}.git"
    _client().request("GET", _app_path(space, name))  # it must exist and be yours
    inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"],
                            capture_output=True, text=True)
    if inside.returncode == 0:
        subprocess.run(["git", "remote", "remove", remote], capture_output=True)
        subprocess.run(["git", "remote", "add", remote, url], check=True)
        typer.echo(f"Added git remote {remote}: {url}")
        typer.echo("Push with `git push cove main`; the password is `cove auth token`.")
    else:
        typer.echo(url)


@auth_cmd.command("token")
def auth_token() -> None:
    """Print your API token (the password for git pushes)."""
    token = Profile().token
    if not token:
        raise ApiError(0, "unauthorized", "not logged in: run `cove login`")
    typer.echo(token)


builds_cmd = typer.Typer(help="An app's builds and their output.", cls=DefaultGroup)
app.add_typer(builds_cmd, name="builds")
stacks_cmd = typer.Typer(help="The build and run images buildpacks use.", cls=DefaultGroup)
app.add_typer(stacks_cmd, name="stacks")


@builds_cmd.command("list")
def builds_list(name: str, log: Annotated[int | None, typer.Option(
        "--log", help="print the output of this build number")] = None,
                space: Space = None, json_: Json = False) -> None:
    """List an app's builds (`cove builds APP`), or print one's output with --log N."""
    if log is not None:
        builds_log(name, log, space)
        return
    found = _client().request("GET", f"{_app_path(space, name)}/builds")
    if json_:
        emit_json(found)
        return
    header(f"{name} builds")
    table([(b["number"], b["status"], b["release"] or "-", b["created_by"],
            b["created_at"][:19], b["error"][:60]) for b in found],
          ("build", "status", "release", "by", "when", "error"))


@builds_cmd.command("log")
def builds_log(name: str, number: int, space: Space = None) -> None:
    """Print the output of one build: `cove builds log APP 3`."""
    typer.echo(_client().request_text("GET", f"{_app_path(space, name)}/builds/{number}/log"))


@stacks_cmd.command("list")
def stacks_list(json_: Json = False) -> None:
    """Show the build and run images and whether they are built."""
    found = _client().request("GET", "/v1/stacks")
    if json_:
        emit_json(found)
        return
    header("stacks")
    table([(s["role"], s["image"], s["id"] or "not built: `cove stacks build`",
            s["created"] or "-", f"{s['size_mb']} MiB" if s["size_mb"] else "-")
           for s in found], ("role", "image", "id", "created", "size"))


@stacks_cmd.command("build")
def stacks_build() -> None:
    """(Re)make the build and run images from Debian packages (platform admins)."""
    last = ""
    for line in _client().stream("/v1/stacks/build", method="POST"):
        typer.echo(line)
        last = line
    if last != "==> stacks built":
        raise typer.Exit(1)


@app.command()
def releases(name: str, space: Space = None, json_: Json = False) -> None:
    """List an app's releases, newest first."""
    found = _client().request("GET", f"{_app_path(space, name)}/releases")
    if json_:
        emit_json(found)
        return
    header(f"{name} releases")
    table([(r["name"] + (" *" if r["current"] else ""), r["description"], r["created_by"],
            r["created_at"][:19]) for r in found], ("version", "description", "by", "when"))


@app.command()
def rollback(name: str, version: Annotated[str | None, typer.Argument(
        help="release to roll back to, e.g. v2 (default: the previous one)")] = None,
             space: Space = None) -> None:
    """Roll back to an earlier release (as a new release)."""
    number = int(version.lstrip("v")) if version else None
    release = _client().request("POST", f"{_app_path(space, name)}/rollback",
                                json={"version": number})
    typer.echo(f"Rolled back: {release['description']} is {release['name']}")


# -- scale, ps, logs -------------------------------------------------------------------------

@app.command()
def ps(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app's instances."""
    found = _client().request("GET", f"{_app_path(space, name)}/instances")
    if json_:
        emit_json(found)
        return
    header(f"{name} instances")
    table([(i["name"], i["state"], i["release"], (i["started_at"] or "")[:19]) for i in found],
          ("instance", "state", "release", "since"))


@app.command()
def scale(name: str, changes: Annotated[list[str], typer.Argument(
        help="TYPE=COUNT, TYPE=COUNT:SIZE or TYPE=:SIZE")], space: Space = None) -> None:
    """Scale process types, e.g. `cove scale hello web=3 worker=1:large`."""
    body: dict[str, dict[str, Any]] = {}
    for change in changes:
        kind, sep, value = change.partition("=")
        count, _, size = value.partition(":")
        if not sep or (count and not count.isdigit()):
            raise ApiError(0, "invalid", f"cannot read {change!r}: use TYPE=COUNT[:SIZE]")
        body[kind] = {"count": int(count) if count else None, "size": size or None}
    result = _client().request("PATCH", f"{_app_path(space, name)}/formation", json=body)
    typer.echo(f"Scaled {name}: {_scale_text(result)}")


@app.command()
def autoscale(name: str, process: Annotated[str, typer.Argument(help="process type")] = "web",
              min_: Annotated[int, typer.Option("--min", help="fewest instances")] = 1,
              max_: Annotated[int, typer.Option("--max", help="most instances")] = 3,
              cpu: Annotated[int, typer.Option(help="target CPU use, percent")] = 70,
              off: Annotated[bool, typer.Option("--off", help="stop autoscaling")] = False,
              space: Space = None) -> None:
    """Let the pool scale a process type between --min and --max (where supported)."""
    path = f"{_app_path(space, name)}/formation/{process}/autoscale"
    if off:
        result = _client().request("DELETE", path)
    else:
        result = _client().request("PUT", path, json={"min": min_, "max": max_,
                                                      "cpu_percent": cpu})
    typer.echo(f"{name}: {_scale_text(result)}")


@app.command()
def logs(name: str, space: Space = None,
         follow: Annotated[bool, typer.Option("--follow", "-f", help="keep streaming")] = False,
         num: Annotated[int, typer.Option("--num", "-n", help="lines of history")] = 100) -> None:
    """Show (and with -f, stream) an app's logs."""
    for line in _client().stream(f"{_app_path(space, name)}/logs", tail=num, follow=follow):
        typer.echo(line)


# -- config ----------------------------------------------------------------------------------

@config_cmd.command("show")
def config_show(name: str, space: Space = None, json_: Json = False) -> None:
    """Show an app's config vars: `cove config APP`."""
    found = _client().request("GET", f"{_app_path(space, name)}/config")
    if json_:
        emit_json(found)
        return
    header(f"{name} config vars")
    pairs(dict(sorted(found.items())))


def _change_config(space: str | None, name: str, changes: dict[str, str | None]) -> None:
    result = _client().request("PATCH", f"{_app_path(space, name)}/config",
                               json={"vars": changes})
    where = f", released {result['release']}" if result["release"] else " (applies on deploy)"
    typer.echo(f"Updated {', '.join(changes)} on {name}{where}")


@config_cmd.command("set")
def config_set(name: str, pairs_: Annotated[list[str], typer.Argument(metavar="KEY=VALUE...")],
               space: Space = None) -> None:
    """Set config vars; a deployed app restarts on a new release with no downtime."""
    changes: dict[str, str | None] = {}
    for pair in pairs_:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ApiError(0, "invalid", f"cannot read {pair!r}: use KEY=VALUE")
        changes[key] = value
    _change_config(space, name, changes)


@config_cmd.command("unset")
def config_unset(name: str, keys: list[str], space: Space = None) -> None:
    """Remove config vars."""
    _change_config(space, name, dict.fromkeys(keys))


@config_cmd.command("get")
def config_get(name: str, key: str, space: Space = None) -> None:
    """Print one config var's value."""
    found = _client().request("GET", f"{_app_path(space, name)}/config")
    if key not in found:
        raise ApiError(0, "not_found", f"{name} has no config var {key}")
    typer.echo(found[key])


# -- domains --------------------------------------------------------------------------------

@domains_cmd.command("list")
def domains_list(name: str, space: Space = None, json_: Json = False) -> None:
    """List an app's custom domains: `cove domains APP`."""
    found = _client().request("GET", f"{_app_path(space, name)}/domains")
    if json_:
        emit_json(found)
        return
    header(f"{name} domains")
    for hostname in found:
        typer.echo(hostname)


@domains_cmd.command("add")
def domains_add(name: str, hostname: str, space: Space = None) -> None:
    """Route a custom domain to an app."""
    _client().request("POST", f"{_app_path(space, name)}/domains", json={"hostname": hostname})
    typer.echo(f"Added {hostname} to {name}: point its DNS at this Cove's router")


@domains_cmd.command("remove")
def domains_remove(name: str, hostname: str, space: Space = None) -> None:
    """Remove a custom domain."""
    _client().request("DELETE", f"{_app_path(space, name)}/domains/{hostname}")
    typer.echo(f"Removed {hostname} from {name}")


# -- spaces and members ------------------------------------------------------------------------

@spaces_cmd.command("list")
def spaces_list(json_: Json = False) -> None:
    """List your spaces with usage against quota."""
    found = _client().request("GET", "/v1/spaces")
    if json_:
        emit_json(found)
        return
    current = Profile().data.get("space")
    header("Spaces")
    table([(("* " if s["name"] == current else "  ") + s["name"], s["role"],
            f"{s['usage']['apps']}/{s['quota']['apps']}",
            f"{s['usage']['instances']}/{s['quota']['instances']}",
            f"{s['usage']['memory_mb']}/{s['quota']['memory_mb']} MB") for s in found],
          ("space", "role", "apps", "instances", "memory"))


@spaces_cmd.command("create")
def spaces_create(name: str, pool: Annotated[str | None, typer.Option(
        help="pool to place it on, e.g. a Kubernetes cluster (platform admins)")] = None) -> None:
    """Create a team space from the space template."""
    _client().request("POST", "/v1/spaces", json={"name": name, "pool": pool})
    typer.echo(f"Created space {name}; `cove spaces use {name}` to make it current")


@spaces_cmd.command("use")
def spaces_use(name: str) -> None:
    """Make a space the current one for later commands."""
    _client().request("GET", f"/v1/spaces/{name}")
    Profile().save(space=name)
    typer.echo(f"Now using space {name}")


@spaces_cmd.command("info")
def spaces_info(name: Annotated[str | None, typer.Argument()] = None, json_: Json = False) -> None:
    """Show a space: quota and usage, limits, network and security profile."""
    info = _client().request("GET", f"/v1/spaces/{_space(name)}")
    if json_:
        emit_json(info)
        return
    header(info["name"])
    usage, quota = info["usage"], info["quota"]
    pairs({"Your role": info["role"], "Pool": info["pool"],
           "Apps": f"{usage['apps']} of {quota['apps']}",
           "Instances": f"{usage['instances']} of {quota['instances']}",
           "Memory": f"{usage['memory_mb']} of {quota['memory_mb']} MB",
           "CPU": f"{usage['cpu_millis']} of {quota['cpu_millis']} millicores",
           "Default size": info["limits"]["default_size"],
           "Max size": info["limits"]["max_size"],
           "Network": "deny by default; allow same space, router, DNS",
           "Security": info["security"]["profile"]})


@spaces_cmd.command("quota")
def spaces_quota(name: str, changes: Annotated[list[str], typer.Argument(
        metavar="KEY=N...", help="e.g. apps=20 memory_mb=8192 (platform admins only)")]) -> None:
    """Change a space's quota (platform admins only)."""
    body = {}
    for change in changes:
        key, _, value = change.partition("=")
        if not value.isdigit():
            raise ApiError(0, "invalid", f"cannot read {change!r}: use KEY=N")
        body[key] = int(value)
    result = _client().request("PUT", f"/v1/spaces/{name}/quota", json=body)
    typer.echo("Quota: " + " ".join(f"{k}={v}" for k, v in result.items()))


@spaces_cmd.command("destroy")
def spaces_destroy(name: str, yes: Annotated[bool, typer.Option("--yes", "-y")] = False) -> None:
    """Destroy a team space and everything in it."""
    if not yes and sys.stdin.isatty() and typer.prompt(f"Type {name} to destroy it") != name:
        raise ApiError(0, "aborted", "not destroyed")
    _client().request("DELETE", f"/v1/spaces/{name}")
    typer.echo(f"Destroyed space {name}")


@members_cmd.command("list")
def members_list(space: Annotated[str | None, typer.Argument()] = None,
                 json_: Json = False) -> None:
    """List a space's members."""
    found = _client().request("GET", f"/v1/spaces/{_space(space)}/members")
    if json_:
        emit_json(found)
        return
    table([(m["user"], m["role"]) for m in found], ("user", "role"))


@members_cmd.command("add")
def members_add(space: str, user: str, role: Annotated[str, typer.Option(
        help="admin, developer or viewer")] = "developer") -> None:
    """Add a member to a space (or change their role)."""
    _client().request("PUT", f"/v1/spaces/{space}/members/{user}", json={"role": role})
    typer.echo(f"{user} is now {role} in {space}")


@members_cmd.command("remove")
def members_remove(space: str, user: str) -> None:
    """Remove a member from a space."""
    _client().request("DELETE", f"/v1/spaces/{space}/members/{user}")
    typer.echo(f"Removed {user} from {space}")


@app.command()
def audit(space: Annotated[str | None, typer.Argument()] = None, json_: Json = False,
          limit: int = 50) -> None:
    """Show a space's audit log (space admins)."""
    found = _client().request("GET", f"/v1/spaces/{_space(space)}/audit",
                              params={"limit": limit})
    if json_:
        emit_json(found)
        return
    table([(a["created_at"][:19], a["actor"], a["action"], a["target"]) for a in found],
          ("when", "actor", "action", "target"))


def main() -> None:
    try:
        app()
    except ApiError as err:
        typer.echo(f" !    {err.message}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
