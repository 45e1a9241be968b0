"""The builds' dependency cache against the real registries (PyPI, npm, the Go module
proxy and its checksum database), and against a registry that serves what it never
published: such a file is refused and never stored, so no build can poison another's."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cove.adapters.depcache.server import DependencyCache, Upstreams
from cove.adapters.depcache.verify import go_hash
from tests.support.services import wait_until


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[tuple[DependencyCache, str]]:
    made = DependencyCache(tmp_path / "cache")
    url = made.start("127.0.0.1", 0)
    yield made, url
    made.stop()


def stored(cache: DependencyCache) -> dict[str, int]:
    """Every stored file, by path, with its inode (a file fetched again gets another)."""
    return {str(p.relative_to(cache.root)): p.stat().st_ino
            for p in cache.root.rglob("*") if p.is_file()}


def test_pip_installs_through_the_cache_and_again_without_fetching(
        cache: tuple[DependencyCache, str], tmp_path: Path) -> None:
    made, url = cache
    for n in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-cache-dir", "--no-deps", "-d",
             str(tmp_path / f"d{n}"), "--index-url", f"{url}/pypi/simple/", "six==1.16.0"],
            capture_output=True, text=True, timeout=300,
            env=dict(os.environ, PIP_FIND_LINKS="", PIP_NO_INDEX=""))
        assert proc.returncode == 0, proc.stderr
        if n == 0:
            first, fetched = stored(made), made.fetched
    assert stored(made) == first and made.fetched == fetched == 1
    [wheel] = (tmp_path / "d1").iterdir()
    assert wheel.read_bytes() == (tmp_path / "d0" / wheel.name).read_bytes()


def test_go_modules_are_checked_against_the_checksum_database(
        cache: tuple[DependencyCache, str], tmp_path: Path) -> None:
    made, url = cache
    for n in range(2):
        gopath = tmp_path / f"go{n}"
        gopath.mkdir()
        proc = subprocess.run(
            ["go", "mod", "download", "-json", "golang.org/x/text@v0.14.0"], cwd=gopath,
            capture_output=True, text=True, timeout=300,
            env=dict(os.environ, GOPROXY=f"{url}/go", GOSUMDB="sum.golang.org",
                     GOPATH=str(gopath), GOFLAGS="-modcacherw", GONOSUMDB="", GOPRIVATE="",
                     GOTOOLCHAIN="local"))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        if n == 0:
            first = stored(made)
    # The zip and go.mod were stored (go itself checked them against the database too).
    assert {p.rsplit("/", 1)[1] for p in first} >= {"v0.14.0.zip", "v0.14.0.mod"}
    assert stored(made) == first


def test_npm_metadata_points_at_the_cache_and_tarballs_keep_their_integrity(
        cache: tuple[DependencyCache, str]) -> None:
    made, url = cache
    document = httpx.get(f"{url}/npm/left-pad", timeout=60).json()
    dist = document["versions"]["1.3.0"]["dist"]
    assert dist["tarball"] == f"{url}/npm/left-pad/-/left-pad-1.3.0.tgz"
    tarball = httpx.get(dist["tarball"], timeout=60).content
    algo, _, value = dist["integrity"].partition("-")
    assert base64.b64encode(hashlib.new(algo, tarball).digest()).decode() == value
    # A tarball asked for directly (as a lockfile names it) is checked all the same.
    direct = httpx.get(f"{url}/npm/left-pad/-/left-pad-1.2.0.tgz", timeout=60)
    assert direct.status_code == 200 and len(stored(made)) == 2


class Liar:
    """A registry that serves `files` (path -> body, or a URL to redirect to) for
    whatever was published, and notes every path asked for."""

    def __init__(self, files: dict[str, bytes | str]) -> None:
        liar = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                liar.asked.append(self.path)
                body = liar.files.get(self.path.split("?")[0])
                if isinstance(body, str):
                    self.send_response(302)
                    self.send_header("Location", body)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args: object) -> None:
                pass

        self.files = files
        self.asked: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def raw_status(url: str, path: str) -> int:
    """The status of GET `path` sent as written (an HTTP client would resolve dots)."""
    import http.client

    conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=30)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def go_zip(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def test_what_a_registry_never_published_is_refused_and_never_stored(tmp_path: Path) -> None:
    digest = hashlib.blake2b(b"the real wheel", digest_size=32).hexdigest()
    wheel = f"/packages/{digest[:2]}/{digest[2:4]}/{digest[4:]}/evil-1.0-py3-none-any.whl"
    tarball = "/evil/-/evil-1.0.0.tgz"
    published = base64.b64encode(hashlib.sha512(b"the real tarball").digest()).decode()
    real = go_zip({"example.com/evil@v1.0.0/go.mod": b"module example.com/evil\n"})
    other = hashlib.sha256(b"other").hexdigest()
    lookup = (f"1\nexample.com/evil v1.0.0 {go_hash([('x', other)])}\n"
              f"example.com/evil v1.0.0/go.mod {go_hash([('go.mod', other)])}\n")
    liar = Liar({wheel: b"a wheel with a backdoor",
                 "/evil": f'{{"versions": {{"1.0.0": {{"dist": {{"tarball": '
                          f'"LIAR{tarball}", "integrity": "sha512-{published}"}}}}}}}}'.encode(),
                 tarball: b"a tarball with a backdoor",
                 "/example.com/evil/@v/v1.0.0.zip": real,
                 "/sumdb/sum.golang.org/lookup/example.com/evil@v1.0.0": lookup.encode()})
    liar.files["/evil"] = liar.files["/evil"].replace(b"LIAR", liar.url.encode())
    made = DependencyCache(tmp_path / "cache", Upstreams(
        pypi=liar.url, pypi_files=liar.url, npm=liar.url, go=liar.url))
    url = made.start("127.0.0.1", 0)
    try:
        for path in (f"/pypi/files{wheel}", f"/npm{tarball}",
                     "/go/example.com/evil/@v/v1.0.0.zip"):
            answer = httpx.get(url + path, timeout=30)
            assert answer.status_code == 502 and "refused" in answer.text, (path, answer.text)
        # A tarball no package publishes is not fetched at all.
        assert httpx.get(f"{url}/npm/evil/-/other-2.0.0.tgz", timeout=30).status_code == 404
        assert stored(made) == {}
        # What the registry did publish is stored.
        liar.files[wheel] = b"the real wheel"
        assert httpx.get(f"{url}/pypi/files{wheel}", timeout=30).content == b"the real wheel"
        assert list(stored(made)) == [f"pypi{wheel}"]
    finally:
        made.stop()
        liar.server.shutdown()


def test_what_a_build_sends_cannot_steer_the_cache(tmp_path: Path) -> None:
    """Paths the registries would resolve (dot segments, encoded dots), redirects off the
    registries, another package's tarballs in a package's metadata: none is fetched or
    remembered. Too many idle connections are closed, not queued. Old npm packages with
    only a sha1 are stored; past its size, the cache drops the least recently used."""
    import socket

    from cove.adapters.depcache.server import CONNECTIONS

    sha1 = hashlib.sha1(b"old tarball").hexdigest()
    other = Liar({"/elsewhere": b"not a registry"})
    liar = Liar({
        "/old": b"", "/old/-/old-1.0.0.tgz": b"old tarball",
        "/simple/moved/": f"{other.url}/elsewhere",
        "/victim/-/victim-1.0.0.tgz": b"a victim's tarball"})
    liar.files["/old"] = json.dumps({"versions": {
        "1.0.0": {"dist": {"tarball": f"{liar.url}/old/-/old-1.0.0.tgz", "shasum": sha1}},
        "6.6.6": {"dist": {"tarball": f"{liar.url}/victim/-/victim-1.0.0.tgz",
                           "integrity": "sha512-AAAA"}}}}).encode()
    made = DependencyCache(tmp_path / "cache", Upstreams(
        pypi=liar.url, pypi_files=liar.url, npm=liar.url, go=liar.url), max_bytes=15)
    url = made.start("127.0.0.1", 0)
    try:
        for path in ("/pypi/simple/./moved/", "/pypi/simple/%2e%2e/x/", "/go//x/@v/list",
                     "/pypi/files/../simple/moved/", "/npm/.hidden", "/nothing/here"):
            assert raw_status(url, path) == 404, path
        assert liar.asked == []
        assert httpx.get(f"{url}/pypi/simple/moved/", timeout=30).status_code == 502
        assert other.asked == []
        document = httpx.get(f"{url}/npm/old", timeout=30).json()
        assert document["versions"]["6.6.6"]["dist"]["tarball"].startswith(liar.url)
        assert httpx.get(f"{url}/npm/victim/-/victim-1.0.0.tgz", timeout=30).status_code \
            == 404  # (the victim's own metadata does not exist here)
        old = httpx.get(f"{url}/npm/old/-/old-1.0.0.tgz", timeout=30)
        assert old.content == b"old tarball" and list(stored(made)) == [
            "npm/old/-/old-1.0.0.tgz"]
        liar.files["/old/-/old-1.0.1.tgz"] = b"newer tarball"
        newer = hashlib.sha1(b"newer tarball").hexdigest()
        liar.files["/old"] = json.dumps({"versions": {"1.0.1": {"dist": {
            "tarball": f"{liar.url}/old/-/old-1.0.1.tgz", "shasum": newer}}}}).encode()
        made._metadata.clear()  # (the document changed upstream)
        assert httpx.get(f"{url}/npm/old/-/old-1.0.1.tgz", timeout=30).status_code == 200
        assert list(stored(made)) == ["npm/old/-/old-1.0.1.tgz"]  # the older went
        host, port = url.removeprefix("http://").split(":")
        idle = [socket.create_connection((host, int(port))) for _ in range(CONNECTIONS)]
        try:
            with pytest.raises(httpx.HTTPError):
                httpx.get(f"{url}/npm/old", timeout=10)
        finally:
            for conn in idle:
                conn.close()

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/npm/old", timeout=10).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 30, "the cache to answer once the idle connections went")
    finally:
        made.stop()
        liar.server.shutdown()
        other.server.shutdown()
