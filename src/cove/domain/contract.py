"""What every app can rely on, on every pool: the port it serves on, the uid it runs as,
the environment Cove adds to its config, and the images buildpacks use by default."""

from __future__ import annotations

PORT = 8000  # apps listen on $PORT; the router and health checks reach them there
RUN_AS_UID = 10001  # instances and buildpack builds run as this unprivileged uid
BUILD_IMAGE = "localhost/cove/stack-build:bookworm"
RUN_IMAGE = "localhost/cove/stack-run:bookworm"
BUILDER_IMAGE = "localhost/cove/builder:bookworm"  # the build sandbox: buildah in a container


def app_env(app: str, space: str, release: int, process: str) -> dict[str, str]:
    """The variables Cove sets for an instance (they override config vars of the same name,
    which `domain.names` refuses anyway)."""
    return {"PORT": str(PORT), "APP_NAME": app, "COVE_SPACE": space,
            "COVE_RELEASE": f"v{release}", "COVE_PROCESS": process}


RESERVED_ENV = frozenset(app_env("", "", 0, ""))
