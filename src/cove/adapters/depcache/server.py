"""The dependency cache: PyPI, npm and the Go module proxy, cached for every build.

Builds (their RUN steps) reach it on the builds' bridge; it fetches from the registries
itself and stores a file only once it matches the hash its registry published (see
verify), so a build can make it fetch but never make it store anything else: no build can
poison another's dependencies. Metadata (indexes, package documents, version lists)
changes, so it is kept only for a few minutes in memory; published files never change,
so they are kept on disk.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from cove.adapters.depcache import verify

log = logging.getLogger(__name__)

METADATA_TTL = 300.0  # seconds an index or package document is reused
MAX_FILE = 1 << 30  # a published file larger than this is passed on, not stored
CHUNK = 1 << 16


@dataclass(frozen=True)
class Upstreams:
    pypi: str = "https://pypi.org"
    pypi_files: str = "https://files.pythonhosted.org"
    npm: str = "https://registry.npmjs.org"
    go: str = "https://proxy.golang.org"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class DependencyCache:
    def __init__(self, root: Path, upstreams: Upstreams = Upstreams()) -> None:
        self.root = root
        self.upstreams = upstreams
        self.fetched = 0  # files fetched from upstream (a cache hit fetches none)
        self._metadata: dict[str, tuple[float, bytes, str]] = {}
        self._integrity: dict[str, tuple[str, str]] = {}  # npm tarball path -> (sri, sha1)
        self._lock = threading.Lock()
        self._client = httpx.Client(
            verify=ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE")),
            timeout=httpx.Timeout(60, connect=15), follow_redirects=True)
        self._server: ThreadingHTTPServer | None = None

    # -- serving -------------------------------------------------------------------------

    def start(self, host: str, port: int) -> str:
        """Serve on host:port in a thread; the base URL builds use."""
        cache = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                cache.handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server((host, port), Handler)
        threading.Thread(target=self._server.serve_forever, name="dependency-cache",
                         daemon=True).start()
        address, bound = self._server.server_address[:2]
        return f"http://{address!s}:{bound}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self._client.close()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        path = urllib.parse.urlsplit(request.path).path
        base = f"http://{request.headers.get('Host', '')}"
        try:
            kind, _, rest = path.lstrip("/").partition("/")
            route = {"pypi": self._pypi, "npm": self._npm, "go": self._go}.get(kind)
            if route is None or ".." in rest.split("/"):
                raise Refused(404, "not a path of the dependency cache")
            body, content_type = route(rest, base, request.headers.get("Accept", "*/*"))
        except Refused as err:
            self._answer(request, err.status, [str(err).encode()], "text/plain")
            return
        except (httpx.HTTPError, OSError) as err:
            log.warning("dependency cache: %s: %s", path, err)
            self._answer(request, 502, [f"upstream failed: {err}".encode()], "text/plain")
            return
        self._answer(request, 200, body, content_type)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, body: Iterator[bytes] | list[bytes],
                content_type: str) -> None:
        if isinstance(body, list):
            data = b"".join(body)
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(data)))
            request.end_headers()
            request.wfile.write(data)
            return
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        file_size = next(body)  # (a stored file's generator yields its size first)
        request.send_header("Content-Length", file_size.decode())
        request.end_headers()
        for chunk in body:
            request.wfile.write(chunk)

    # -- PyPI -----------------------------------------------------------------------------

    def _pypi(self, rest: str, base: str, accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
        if rest.startswith("simple/"):
            page = self._document(f"{self.upstreams.pypi}/{rest}", "text/html")
            text = page.decode().replace(f"{self.upstreams.pypi_files}/", f"{base}/pypi/files/")
            return [text.encode()], "text/html"
        if rest.startswith("files/"):
            path = rest.removeprefix("files/")
            stored = self.root / "pypi" / path
            if verify.pypi_digest(path) is None:  # (PEP 658 metadata: pip checks its hash)
                return [self._get(f"{self.upstreams.pypi_files}/{path}")], \
                    "application/octet-stream"
            return self._stored(stored, f"{self.upstreams.pypi_files}/{path}",
                                lambda data, blake: verify.check_pypi(path, blake)), \
                "application/octet-stream"
        raise Refused(404, "not a PyPI path")

    # -- npm ------------------------------------------------------------------------------

    def _npm(self, rest: str, base: str, accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
        if "/-/" in rest:  # a tarball: <name>/-/<file>.tgz
            return self._npm_tarball(rest), "application/octet-stream"
        name = urllib.parse.unquote(rest)
        if not re.fullmatch(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", name, re.IGNORECASE):
            raise Refused(404, "not an npm package name")
        document = json.loads(self._document(
            f"{self.upstreams.npm}/{name.replace('/', '%2f')}",
            "application/vnd.npm.install-v1+json" if "install-v1" in accept
            else "application/json"))
        for version in (document.get("versions") or {}).values():
            dist = version.get("dist") or {}
            tarball = dist.get("tarball", "")
            if tarball.startswith(f"{self.upstreams.npm}/"):
                path = tarball.removeprefix(f"{self.upstreams.npm}/")
                with self._lock:
                    self._integrity[path] = (dist.get("integrity", ""), dist.get("shasum", ""))
                dist["tarball"] = f"{base}/npm/{path}"
        return [json.dumps(document).encode()], "application/json"

    def _npm_tarball(self, path: str) -> Iterator[bytes]:
        with self._lock:
            known = self._integrity.get(path)
        if known is None:  # (a lockfile names tarballs directly) learn it from the registry
            self._npm(path.split("/-/")[0], "http://cove", "application/json")
            with self._lock:
                known = self._integrity.get(path)
        if known is None:
            raise Refused(404, f"{path} is not a tarball its package publishes")
        integrity, shasum = known

        def check(data: bytes, _: str) -> None:
            if integrity:
                verify.check_sri(integrity, data)
            elif shasum:
                verify.check_shasum(shasum, data)
            else:
                raise verify.Mismatch("the registry publishes no hash for it")

        return self._stored(self.root / "npm" / path, f"{self.upstreams.npm}/{path}", check,
                            whole=True)

    # -- Go -------------------------------------------------------------------------------

    def _go(self, rest: str, base: str, accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
        if rest.startswith("sumdb/"):  # the checksum database, through the proxy
            if rest.endswith("/supported"):
                return [b""], "text/plain"
            return [self._get(f"{self.upstreams.go}/{rest}")], "text/plain"
        found = re.fullmatch(r"(.+)/@v/([^/]+)\.(info|mod|zip)", rest)
        if found is None:  # version lists and @latest change: passed through
            return [self._document(f"{self.upstreams.go}/{rest}", "*/*")], "text/plain"
        module, version, ext = found.groups()
        url = f"{self.upstreams.go}/{rest}"
        if ext == "info":
            return [self._document(url, "*/*")], "application/json"

        def check(data: bytes, _: str) -> None:
            lookup = self._get(f"{self.upstreams.go}/sumdb/sum.golang.org/lookup/"
                               f"{module}@{version}").decode()
            zip_hash, mod_hash = verify.sumdb_hashes(lookup, verify.go_unescape(module),
                                                     verify.go_unescape(version))
            actual = verify.go_zip_hash(data) if ext == "zip" else verify.go_mod_hash(data)
            if actual != (zip_hash if ext == "zip" else mod_hash):
                raise verify.Mismatch(f"{module}@{version}.{ext}: {actual} is not the "
                                      "checksum database's hash")

        return self._stored(self.root / "go" / rest, url, check, whole=True), \
            "application/octet-stream"

    # -- fetching and storing -------------------------------------------------------------

    def _get(self, url: str, accept: str = "*/*") -> bytes:
        answer = self._client.get(url, headers={"Accept": accept})
        if answer.status_code in (404, 410):
            raise Refused(404, f"{url}: not found upstream")
        answer.raise_for_status()
        return answer.content

    def _document(self, url: str, accept: str) -> bytes:
        key = f"{accept} {url}"
        with self._lock:
            kept = self._metadata.get(key)
        if kept is not None and time.monotonic() - kept[0] < METADATA_TTL:
            return kept[1]
        data = self._get(url, accept)
        with self._lock:
            self._metadata[key] = (time.monotonic(), data, accept)
        return data

    def _stored(self, stored: Path, url: str, check: Callable[[bytes, str], None],
                whole: bool = False) -> Iterator[bytes]:
        """The file at `stored`, fetched from `url` first if missing and stored only if
        `check(content, blake2b-256 hex)` accepts it."""
        if not stored.is_file():
            self._fetch(stored, url, check, whole)
        return _read(stored)

    def _fetch(self, stored: Path, url: str, check: Callable[[bytes, str], None],
               whole: bool) -> None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        blake = hashlib.blake2b(digest_size=32)
        kept = bytearray()
        size = 0
        with tempfile.NamedTemporaryFile(dir=stored.parent, delete=False) as temp:
            try:
                with self._client.stream("GET", url) as answer:
                    if answer.status_code in (404, 410):
                        raise Refused(404, f"{url}: not found upstream")
                    answer.raise_for_status()
                    for chunk in answer.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > MAX_FILE:
                            raise Refused(502, f"{url}: larger than the cache stores")
                        blake.update(chunk)
                        if whole:
                            kept += chunk
                        temp.write(chunk)
                with self._lock:
                    self.fetched += 1
                try:
                    check(bytes(kept), blake.hexdigest())
                except verify.Mismatch as err:
                    log.warning("dependency cache refused %s: %s", url, err)
                    raise Refused(502, f"refused: {err}") from None
                temp.flush()
                os.fchmod(temp.fileno(), 0o644)
                os.replace(temp.name, stored)
            except BaseException:
                Path(temp.name).unlink(missing_ok=True)
                raise


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # The builds' bridge gets its address when its first build starts: bind before.
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        super().server_bind()


IP_FREEBIND = 15  # (linux/in.h; not exported by the socket module)


def build_env(base: str) -> dict[str, str]:
    """What a build stage's package managers need to fetch through the cache at `base`."""
    host = urllib.parse.urlsplit(base).hostname or ""
    return {"PIP_INDEX_URL": f"{base}/pypi/simple/", "PIP_TRUSTED_HOST": host,
            "npm_config_registry": f"{base}/npm/", "GOPROXY": f"{base}/go",
            "GOSUMDB": "sum.golang.org"}


def _read(path: Path) -> Iterator[bytes]:
    def chunks() -> Iterator[bytes]:
        with path.open("rb") as handle:
            yield str(os.fstat(handle.fileno()).st_size).encode()
            while chunk := handle.read(CHUNK):
                yield chunk
    return chunks()
