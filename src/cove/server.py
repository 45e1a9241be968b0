"""`cove-server`: runs the API, the reconciler and the router on this machine."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

import uvicorn

from cove.adapters.builder.stacks import Stack, build_stack
from cove.adapters.runtime.local.engine import Engine
from cove.api.app import create_api
from cove.bootstrap import build
from cove.domain.errors import CoveError
from cove.services import accounts
from cove.settings import ServerSettings


def serve(settings: ServerSettings) -> None:
    platform = build(settings)
    # Adopt what is already running before taking requests, so a restart changes nothing.
    platform.reconciler.tick()
    loop = threading.Thread(target=platform.reconciler.run,
                            args=(settings.reconcile_interval,), daemon=True, name="reconciler")
    loop.start()
    api = create_api(platform.ctx, platform.reconciler)
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = ServerSettings.from_env()
    if args.command == "create-admin":
        create_admin(settings, args.name)
    elif args.command == "teardown":
        teardown(settings)
    elif args.command == "stacks":
        build_stack(Engine(settings.home / "engine"),
                    stack=Stack(settings.build_image, settings.run_image),
                    mirror=settings.debian_mirror)
    else:
        serve(settings)


if __name__ == "__main__":
    main()
