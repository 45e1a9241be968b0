"""The dependency cache: PyPI, npm and the Go module proxy, cached for every build.

Builds (their RUN steps) reach it on the builds' bridge; it fetches from the registries
itself and stores a file only once it matches the hash its registry published (see
verify), so a build can make it fetch but never make it store anything else: no build can
poison another's dependencies. Metadata (indexes, package documents, version lists)
changes, so it is kept only for a few minutes, in a bounded memory; published files never
change, so they are kept on disk, up to a size past which the least recently used go.

What a build sends is hostile: paths are checked segment by segment, answers from the
registries are bounded and never held whole in memory, redirects are followed only to the
registries, and connections are limited in number and time.
"""

from __future__ import annotations

import contextlib
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
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from cove.adapters.depcache import verify

log = logging.getLogger(__name__)

METADATA_TTL = 300.0  # seconds an index or package document is reused
METADATA_BYTES = 256 << 20  # documents kept in memory at most
MAX_DOCUMENT = 64 << 20  # an index, a package document, a file passed through
MAX_FILE = 512 << 20  # a published file larger than this is refused
INTEGRITY_KEPT = 200_000  # npm tarballs whose published hashes are remembered
CONNECTIONS = 32  # at once; more are closed at once
IDLE_SECONDS = 30.0  # a connection that sends nothing for this long is closed
CHUNK = 1 << 16


@dataclass(frozen=True)
class Upstreams:
    pypi: str = "https://pypi.org"
    pypi_files: str = "https://files.pythonhosted.org"
    npm: str = "https://registry.npmjs.org"
    go: str = "https://proxy.golang.org"

    def origins(self) -> set[str]:
        return {_origin(u) for u in (self.pypi, self.pypi_files, self.npm, self.go)}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Check = Callable[[Path, dict[str, bytes]], None]


class DependencyCache:
    def __init__(self, root: Path, upstreams: Upstreams = Upstreams(),
                 max_bytes: int = 10 << 30) -> None:
        self.root = root
        self.upstreams = upstreams
        self.max_bytes = max_bytes
        self.fetched = 0  # files fetched from upstream (a cache hit fetches none)
        self._metadata: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._metadata_bytes = 0
        self._integrity: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._fetching: dict[Path, threading.Lock] = {}
        self._stored_bytes: int | None = None  # counted once, then kept up to date
        self._lock = threading.Lock()
        self._client = httpx.Client(
            verify=ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE")),
            timeout=httpx.Timeout(60, connect=15), follow_redirects=False)
        self._server: ThreadingHTTPServer | None = None

    # -- serving -------------------------------------------------------------------------

    def start(self, host: str, port: int) -> str:
        """Serve on host:port in a thread; the base URL builds use."""
        cache = self

        class Handler(BaseHTTPRequestHandler):
            timeout = IDLE_SECONDS

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
            kind, rest = _route(path)
            route = {"pypi": self._pypi, "npm": self._npm, "go": self._go}[kind]
            body, content_type = route(rest, base, request.headers.get("Accept", "*/*"))
        except Refused as err:
            self._answer(request, err.status, [str(err).encode()], "text/plain")
            return
        except Exception as err:  # (what upstream or a build sent: an answer, not a crash)
            log.warning("dependency cache: %s: %s: %s", path, type(err).__name__, err)
            self._answer(request, 502, [f"upstream failed: {type(err).__name__}".encode()],
                         "text/plain")
            return
        self._answer(request, 200, body, content_type)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int,
                body: Iterator[bytes] | list[bytes], content_type: str) -> None:
        if isinstance(body, list):
            data = b"".join(body)
            size = str(len(data))
            body = iter([data])
        else:
            size = next(body).decode()  # (a stored file's generator yields its size first)
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", size)
        request.end_headers()
        for chunk in body:
            request.wfile.write(chunk)

    # -- PyPI -----------------------------------------------------------------------------

    def _pypi(self, rest: str, base: str,
              accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
        if rest.startswith("simple/"):
            page = self._document(f"{self.upstreams.pypi}/{rest}", "text/html")
            text = page.decode(errors="replace").replace(f"{self.upstreams.pypi_files}/",
                                                         f"{base}/pypi/files/")
            return [text.encode()], "text/html"
        if rest.startswith("files/"):
            path = rest.removeprefix("files/")
            url = f"{self.upstreams.pypi_files}/{path}"
            if verify.pypi_digest(path) is None:  # (PEP 658 metadata: pip checks its hash)
                return [self._get(url)], "application/octet-stream"
            return self._stored(self.root / "pypi" / path, url,
                                lambda _, digests: verify.check_pypi(
                                    path, digests["blake2b"].hex())), \
                "application/octet-stream"
        raise Refused(404, "not a PyPI path")

    # -- npm ------------------------------------------------------------------------------

    def _npm(self, rest: str, base: str,
             accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
        if "/-/" in rest:  # a tarball: <name>/-/<file>.tgz
            return self._npm_tarball(rest), "application/octet-stream"
        name = _npm_name(rest)
        document = json.loads(self._document(
            f"{self.upstreams.npm}/{name.replace('/', '%2f')}",
            "application/vnd.npm.install-v1+json" if "install-v1" in accept
            else "application/json"))
        versions = document.get("versions") if isinstance(document, dict) else None
        for version in (versions or {}).values():
            dist = version.get("dist") if isinstance(version, dict) else None
            if not isinstance(dist, dict):
                continue
            tarball = dist.get("tarball")
            if not isinstance(tarball, str) or \
                    not tarball.startswith(f"{self.upstreams.npm}/{name}/-/"):
                continue  # (only this package's own tarballs are remembered, or rewritten)
            path = tarball.removeprefix(f"{self.upstreams.npm}/")
            with self._lock:
                self._integrity[path] = (str(dist.get("integrity") or ""),
                                         str(dist.get("shasum") or ""))
                self._integrity.move_to_end(path)
                while len(self._integrity) > INTEGRITY_KEPT:
                    self._integrity.popitem(last=False)
            dist["tarball"] = f"{base}/npm/{path}"
        return [json.dumps(document).encode()], "application/json"

    def _npm_tarball(self, path: str) -> Iterator[bytes]:
        name = _npm_name(path.split("/-/")[0])
        with self._lock:
            known = self._integrity.get(path)
        if known is None:  # (a lockfile names tarballs directly) learn it from the registry
            self._npm(name, "http://cove", "application/json")
            with self._lock:
                known = self._integrity.get(path)
        if known is None:
            raise Refused(404, f"{path} is not a tarball its package publishes")
        integrity, shasum = known
        return self._stored(self.root / "npm" / path, f"{self.upstreams.npm}/{path}",
                            lambda _, digests: verify.check_npm(integrity, shasum, digests))

    # -- Go -------------------------------------------------------------------------------

    def _go(self, rest: str, base: str,
            accept: str) -> tuple[Iterator[bytes] | list[bytes], str]:
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

        def check(path: Path, _: dict[str, bytes]) -> None:
            lookup = self._get(f"{self.upstreams.go}/sumdb/sum.golang.org/lookup/"
                               f"{module}@{version}").decode(errors="replace")
            zip_hash, mod_hash = verify.sumdb_hashes(lookup, verify.go_unescape(module),
                                                     verify.go_unescape(version))
            actual = verify.go_zip_hash(path) if ext == "zip" else verify.go_mod_hash(path)
            if actual != (zip_hash if ext == "zip" else mod_hash):
                raise verify.Mismatch(f"{module}@{version}.{ext}: {actual} is not the "
                                      "checksum database's hash")

        return self._stored(self.root / "go" / rest, url, check), "application/octet-stream"

    # -- fetching and storing -------------------------------------------------------------

    def _open(self, url: str, accept: str = "*/*") -> httpx.Response:
        """A streamed answer from the registries, following redirects among them only."""
        for _ in range(5):
            answer = self._client.send(self._client.build_request(
                "GET", url, headers={"Accept": accept}), stream=True)
            if answer.is_redirect:
                target = urllib.parse.urljoin(url, answer.headers.get("Location", ""))
                answer.close()
                if _origin(target) not in self.upstreams.origins():
                    raise Refused(502, "the registry redirected elsewhere")
                url = target
                continue
            if answer.status_code in (404, 410):
                answer.close()
                raise Refused(404, "not found upstream")
            if answer.status_code != 200:
                answer.close()
                raise Refused(502, f"the registry answered {answer.status_code}")
            return answer
        raise Refused(502, "too many redirects")

    def _get(self, url: str, accept: str = "*/*") -> bytes:
        """A small answer (an index, a document, a file passed through), whole."""
        answer = self._open(url, accept)
        data = bytearray()
        try:
            for chunk in answer.iter_bytes(CHUNK):
                data += chunk
                if len(data) > MAX_DOCUMENT:
                    raise Refused(502, "the registry's answer is larger than the cache takes")
        finally:
            answer.close()
        return bytes(data)

    def _document(self, url: str, accept: str) -> bytes:
        key = f"{accept} {url}"
        with self._lock:
            kept = self._metadata.get(key)
        if kept is not None and time.monotonic() - kept[0] < METADATA_TTL:
            return kept[1]
        data = self._get(url, accept)
        with self._lock:
            old = self._metadata.pop(key, None)
            self._metadata_bytes += len(data) - (len(old[1]) if old else 0)
            self._metadata[key] = (time.monotonic(), data)
            while self._metadata_bytes > METADATA_BYTES:
                self._metadata_bytes -= len(self._metadata.popitem(last=False)[1][1])
        return data

    def _stored(self, stored: Path, url: str, check: Check) -> Iterator[bytes]:
        """The file at `stored`, fetched from `url` first if missing and stored only if
        `check(temporary file, its digests)` accepts it. One fetch per file at a time."""
        with self._lock:
            fetching = self._fetching.setdefault(stored, threading.Lock())
        with fetching:
            if not stored.is_file():
                self._fetch(stored, url, check)
        with self._lock:
            self._fetching.pop(stored, None)
        with contextlib.suppress(OSError):
            os.utime(stored)  # (recently used: kept when the cache makes room)
        return _read(stored)

    def _fetch(self, stored: Path, url: str, check: Check) -> None:
        stored.parent.mkdir(parents=True, exist_ok=True)
        digests: dict[str, Any] = {
            "blake2b": hashlib.blake2b(digest_size=32), "sha512": hashlib.sha512(),
                   "sha256": hashlib.sha256(),
                   "sha1": hashlib.sha1(usedforsecurity=False)}
        size = 0
        with tempfile.NamedTemporaryFile(dir=stored.parent, prefix=".partial-",
                                         delete=False) as temp:
            try:
                answer = self._open(url)
                try:
                    for chunk in answer.iter_bytes(CHUNK):
                        size += len(chunk)
                        if size > MAX_FILE:
                            raise Refused(502, "larger than the cache stores")
                        for digest in digests.values():
                            digest.update(chunk)
                        temp.write(chunk)
                finally:
                    answer.close()
                temp.flush()
                with self._lock:
                    self.fetched += 1
                try:
                    check(Path(temp.name), {k: d.digest() for k, d in digests.items()})
                except verify.Mismatch as err:
                    log.warning("dependency cache refused %s: %s", url, err)
                    raise Refused(502, f"refused: {err}") from None
                os.fchmod(temp.fileno(), 0o644)
                os.replace(temp.name, stored)
            except BaseException:
                Path(temp.name).unlink(missing_ok=True)
                raise
        self._make_room(size, stored)

    def _make_room(self, added: int, kept: Path) -> None:
        """Past `max_bytes` on disk, the least recently used files go (to 80% of it), but
        never `kept` (just stored, to be served)."""
        with self._lock:
            if self._stored_bytes is None:
                self._stored_bytes = sum(p.stat().st_size for p in self.root.rglob("*")
                                         if p.is_file()) - added
            self._stored_bytes += added
            if self._stored_bytes <= self.max_bytes:
                return
            files = sorted((p.stat().st_mtime, p.stat().st_size, p)
                           for p in self.root.rglob("*") if p.is_file())
            for _, size, path in files:
                if self._stored_bytes <= self.max_bytes * 0.8:
                    break
                if path == kept:
                    continue
                path.unlink(missing_ok=True)
                self._stored_bytes -= size


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._slots = threading.BoundedSemaphore(CONNECTIONS)
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        # The builds' bridge gets its address when its first build starts: bind before.
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        super().server_bind()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # (too many at once: closed, not queued)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


IP_FREEBIND = 15  # (linux/in.h; not exported by the socket module)


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _route(path: str) -> tuple[str, str]:
    """(registry, the rest of the path) of a request; every segment a plain name."""
    kind, _, rest = path.lstrip("/").partition("/")
    segments = rest.removesuffix("/").split("/")
    if kind not in ("pypi", "npm", "go") or any(
            s in ("", ".", "..") or s.startswith(".") or "%" in s.replace("%2f", "")
            .replace("%2F", "") or "\\" in s for s in segments):
        raise Refused(404, "not a path of the dependency cache")
    return kind, rest


def _npm_name(text: str) -> str:
    name = urllib.parse.unquote(text)
    if not re.fullmatch(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", name, re.IGNORECASE):
        raise Refused(404, "not an npm package name")
    return name


def build_env(base: str) -> dict[str, str]:
    """What a build stage's package managers need to fetch through the cache at `base`."""
    host = urllib.parse.urlsplit(base).hostname or ""
    return {"PIP_INDEX_URL": f"{base}/pypi/simple/", "PIP_TRUSTED_HOST": host,
            "npm_config_registry": f"{base}/npm/", "GOPROXY": f"{base}/go",
            "GOSUMDB": "sum.golang.org"}


def _read(path: Path) -> Iterator[bytes]:
    """The file's size, then its content: opened now (it may be dropped meanwhile)."""
    handle = path.open("rb")

    def chunks() -> Iterator[bytes]:
        with handle:
            yield str(os.fstat(handle.fileno()).st_size).encode()
            while chunk := handle.read(CHUNK):
                yield chunk
    return chunks()
