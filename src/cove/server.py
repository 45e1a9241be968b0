"""`cove-server`: runs the API, the reconciler and the router on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import uvicorn

from cove.adapters.builder.stacks import Stack, build_stack
from cove.adapters.engine import Engine
from cove.api.app import create_api
from cove.bootstrap import build
from cove.domain.checks import FAIL, WARN
from cove.domain.errors import CoveError
from cove.preflight.host import GROUPS, doctor
from cove.preflight.requirements import SCOPES, SERVER_SCOPES
from cove.services import accounts, builds
from cove.settings import ServerSettings


def preflight(settings: ServerSettings) -> None:
    """Refuse to start on a host that cannot run Cove, and say what to fix."""
    checks = doctor(settings, groups=("install", "host"), starting=True)
    blocking = [c for c in checks if c.status == FAIL]
    for check in blocking:
        print(f"cove-server: {check.line()}", file=sys.stderr)
    if blocking:
        sys.exit("cove-server: this machine is not ready (`cove-server doctor` shows every "
                 "check); not starting")


def serve(settings: ServerSettings) -> None:
    preflight(settings)
    if os.environ.get("COVE_CRASH_AT"):
        print(f"cove-server: COVE_CRASH_AT={os.environ['COVE_CRASH_AT']} is set: this server "
              "kills itself at that step (a chaos test's setting, never a production one)",
              file=sys.stderr)
    platform = build(settings)
    interrupted = builds.fail_interrupted(platform.ctx)
    if interrupted:
        print(f"cove-server: {interrupted} build(s) left running by the previous server are "
              "recorded as failed", file=sys.stderr)
    # Adopt what is already running before taking requests, so a restart changes nothing.
    platform.reconciler.tick()
    loop = threading.Thread(target=platform.reconciler.run,
                            args=(settings.reconcile_interval,), daemon=True, name="reconciler")
    loop.start()
    api = create_api(platform.ctx)
    print(f"cove: API on http://127.0.0.1:{settings.api_port}, router on "
          f"http://{settings.router_listen}:{settings.router_port} "
          f"(apps at http://<app>-<space>.{settings.base_domain}:{settings.router_port}/)",
          flush=True)
    try:
        uvicorn.run(api, host="127.0.0.1", port=settings.api_port, log_level="warning")
    finally:
        platform.reconciler.stop()
        # The router and the instances keep running: apps stay up while the broker is down.


def create_admin(settings: ServerSettings, name: str) -> None:
    password = os.environ.get("COVE_ADMIN_PASSWORD") or sys.stdin.readline().rstrip("\n")
    platform = build(settings)
    try:
        accounts.signup(platform.ctx, name, password, is_admin=True)
    except CoveError as err:
        sys.exit(f"cove-server: {err.message}")
    print(f"platform admin {name} created")


def teardown(settings: ServerSettings) -> None:
    """Stop the router and every instance Cove runs (data in the store is kept)."""
    platform = build(settings)
    platform.router.stop()
    count = platform.runtime.remove_everything()
    print(f"stopped the router and {count} instances")


def run_doctor(settings: ServerSettings, only: list[str] | None, scope: str) -> int:
    scopes = tuple(SCOPES) if scope == "all" else SERVER_SCOPES
    checks = doctor(settings, groups=tuple(only or GROUPS), scopes=scopes)
    for check in checks:
        print(check.line(), flush=True)
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="cove-server", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the API, reconciler and router (default)")
    admin = sub.add_parser("create-admin", help="create a platform admin (password on stdin "
                           "or in COVE_ADMIN_PASSWORD)")
    admin.add_argument("name")
    sub.add_parser("teardown", help="stop the router and all instances")
    stacks = sub.add_parser("stacks", help="the base images buildpacks build and run on")
    stacks.add_argument("action", choices=["build"])
    check = sub.add_parser("doctor", help="check that this machine is ready to run Cove "
                           "(exit code 1 when something blocks it)")
    check.add_argument("--only", action="append", choices=GROUPS,
                       help="only this group of checks (repeatable)")
    check.add_argument("--scope", choices=["server", "all"], default="server",
                       help="all: also what `make run` and the tests need")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = ServerSettings.from_env()
    if args.command == "create-admin":
        create_admin(settings, args.name)
    elif args.command == "teardown":
        teardown(settings)
    elif args.command == "doctor":
        sys.exit(run_doctor(settings, args.only, args.scope))
    elif args.command == "stacks":
        build_stack(Engine(settings.home / "engine"),
                    stack=Stack(settings.build_image, settings.run_image,
                                settings.builder_image),
                    mirror=settings.debian_mirror)
    else:
        serve(settings)


if __name__ == "__main__":
    main()
