"""Domain errors. Entrypoints map each class to one HTTP status in one place."""

from __future__ import annotations


class CoveError(Exception):
    """Base class: `code` is a stable machine-readable word, the message says what to do."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class NotFound(CoveError):
    code = "not_found"


class Conflict(CoveError):
    code = "conflict"


class Invalid(CoveError):
    code = "invalid"


class QuotaExceeded(CoveError):
    code = "quota_exceeded"


class Forbidden(CoveError):
    code = "forbidden"


class Unauthorized(CoveError):
    code = "unauthorized"


class Unsupported(CoveError):
    code = "unsupported"


class DeployFailed(CoveError):
    """The new release never became healthy; the previous one keeps serving."""

    code = "deploy_failed"


class ImageError(CoveError):
    """The image could not be resolved: unknown, unreachable registry, bad credentials."""

    code = "image_error"


class BuildFailed(CoveError):
    """The build ran and failed (or hit a limit); the previous release keeps serving."""

    code = "build_failed"


class RouteRefused(Invalid):
    """The router refused a configuration: nothing changed, the previous one serves."""

    code = "route_refused"


class RateLimited(CoveError):
    """Too many at once or too fast (streams, logins): wait, then try again."""

    code = "rate_limited"
