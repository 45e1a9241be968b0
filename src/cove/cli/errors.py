"""The CLI's own errors, apart from the API's answers (`client.ApiError`)."""

from __future__ import annotations


class CliError(Exception):
    """Something the CLI itself refuses or cannot do: no current space, Cove unreachable,
    a destroy not confirmed. Printed like an API error, exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
