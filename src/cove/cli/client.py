"""A small HTTP client for Cove's API, with the CLI's saved login."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

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
        response = self._send(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._not_cove(response) from None

    def request_text(self, method: str, path: str) -> str:
        return self._send(method, path).text

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise self._unreachable() from None
        if response.status_code >= 400:
            raise _error(response) if _is_coves(response) else self._not_cove(response)
        return response

    def _unreachable(self) -> CliError:
        return CliError(f"cannot reach Cove at {self.profile.url}: is it running? Start it "
                        "with `make run` (or `cove-server`), or set COVE_URL to point elsewhere")

    def _not_cove(self, response: httpx.Response) -> CliError | ApiError:
        """An answer that is not Cove's: the router in front of a stopped server (502-504),
        or something else listening at COVE_URL."""
        if response.status_code in (502, 503, 504):
            return CliError(f"the Cove server at {self.profile.url} is not answering (HTTP "
                            f"{response.status_code} from the router in front of it): start "
                            "it with `make run` (or `cove-server`), or set COVE_URL to point "
                            "elsewhere")
        return ApiError(response.status_code, "error",
                        f"{self.profile.url} answered HTTP {response.status_code} with "
                        f"something that is not Cove's API ({_text_of(response)}): is COVE_URL "
                        "right?")

    def stream_post(self, path: str, data: bytes | BinaryIO) -> Iterator[str]:
        """POST a body (a file is sent in chunks) and yield the response's lines as they
        arrive."""
        return self._lines("POST", path, content=data,
                           headers={"Content-Type": "application/gzip"})

    def stream(self, path: str, method: str = "GET", **params: Any) -> Iterator[str]:
        return self._lines(method, path, params=params)

    def _lines(self, method: str, path: str, **kwargs: Any) -> Iterator[str]:
        try:
            with self.http.stream(method, path, timeout=None, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _error(response) if _is_coves(response) else \
                        self._not_cove(response)
                yield from response.iter_lines()
        except httpx.ConnectError:
            raise self._unreachable() from None


def _is_coves(response: httpx.Response) -> bool:
    """Cove's API answers errors in its JSON envelope: {"error": {"code", "message"}}."""
    try:
        err = response.json()["error"]
        return isinstance(err["code"], str) and isinstance(err["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


def _error(response: httpx.Response) -> ApiError:
    err = response.json()["error"]
    return ApiError(response.status_code, err["code"], err["message"])


def _text_of(response: httpx.Response) -> str:
    """A page's words without its markup, shortened: enough to recognise it."""
    words = " ".join(re.sub(r"<[^>]*>", " ", response.text).split())
    return (words[:120] + "...") if len(words) > 120 else words or "an empty body"
