"""A small HTTP client for Cove's API, with the CLI's saved login."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from cove.cli.errors import CliError

DEFAULT_URL = "http://localhost:8080"


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def config_dir() -> Path:
    base = os.environ.get("COVE_CONFIG_DIR") or os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config", "cove")
    return Path(base)


class Profile:
    """What `cove login` remembers: API URL, token, user and current space."""

    def __init__(self) -> None:
        self.path = config_dir() / "config.json"
        data: dict[str, Any] = {}
        if self.path.exists():
            data = json.loads(self.path.read_text() or "{}")
        self.data = data

    @property
    def url(self) -> str:
        return (os.environ.get("COVE_URL") or self.data.get("url") or DEFAULT_URL).rstrip("/")

    @property
    def token(self) -> str | None:
        return os.environ.get("COVE_TOKEN") or self.data.get("token")

    def save(self, **values: Any) -> None:
        self.data.update(values)
        self.data = {k: v for k, v in self.data.items() if v is not None}
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_suffix(".tmp")
        tmp.touch(mode=0o600)
        tmp.write_text(json.dumps(self.data, indent=2))
        tmp.replace(self.path)


class Client:
    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        headers = {"Authorization": f"Bearer {profile.token}"} if profile.token else {}
        self.http = httpx.Client(base_url=profile.url, headers=headers,
                                 timeout=httpx.Timeout(600, connect=10))

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise CliError(f"cannot reach Cove at {self.profile.url}: is it "
                           "running (`make run`)? set COVE_URL to point elsewhere") from None
        if response.status_code >= 400:
            raise _error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def request_text(self, method: str, path: str) -> str:
        response = self.http.request(method, path)
        if response.status_code >= 400:
            raise _error(response)
        return response.text

    def stream_post(self, path: str, data: bytes) -> Iterator[str]:
        """POST a body and yield the response's lines as they arrive."""
        return self._lines("POST", path, content=data,
                           headers={"Content-Type": "application/gzip"})

    def stream(self, path: str, method: str = "GET", **params: Any) -> Iterator[str]:
        return self._lines(method, path, params=params)

    def _lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        try:
            with self.http.stream(method, path, timeout=None, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response)
                yield from response.iter_lines()
        except httpx.ConnectError:
            raise CliError(f"cannot reach Cove at {self.profile.url}") from None


def _error(response: httpx.Response) -> ApiError:
    try:
        err = response.json()["error"]
        return ApiError(response.status_code, err["code"], err["message"])
    except (ValueError, KeyError, TypeError):
        return ApiError(response.status_code, "error",
                        f"HTTP {response.status_code}: {response.text[:200]}")
