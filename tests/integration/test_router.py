"""nginx managed by Cove: host routing, load balancing, 404 and 503 pages, graceful reload."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from cove.adapters.router.nginx.process import NginxRouter
from cove.adapters.router.nginx.render import RouterConfig
from cove.ports.router import Route
from tests.support.services import free_port, wait_until


class Named(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"{self.server.server_address[1]} {self.headers['Host']}".encode()  # type: ignore[index]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backends() -> Iterator[list[str]]:
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Named) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [f"127.0.0.1:{s.server_address[1]}" for s in servers]
    for server in servers:
        server.shutdown()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[tuple[NginxRouter, str]]:
    port = free_port()
    r = NginxRouter(RouterConfig(prefix=str(tmp_path / "router"), listen=f"127.0.0.1:{port}",
                                 api_backend=None, api_hosts=()))
    yield r, f"http://127.0.0.1:{port}"
    r.stop()


def test_routes_by_host_and_balances(router: tuple[NginxRouter, str],
                                     backends: list[str]) -> None:
    r, url = router
    assert r.apply([Route(1, ("hello-alice.localhost", "www.example.test"), tuple(backends))])
    seen = {httpx.get(url, headers={"Host": "hello-alice.localhost"}).text.split()[0]
            for _ in range(6)}
    assert seen == {b.split(":")[1] for b in backends}
    answer = httpx.get(url, headers={"Host": "www.example.test"}).text
    assert answer.endswith("www.example.test")  # the app sees the original Host


def test_unknown_hosts_get_a_clear_404_and_empty_apps_a_503(router: tuple[NginxRouter, str]
                                                            ) -> None:
    r, url = router
    r.apply([Route(1, ("idle-alice.localhost",), ())])
    missing = httpx.get(url, headers={"Host": "nobody.localhost"})
    assert missing.status_code == 404 and "No app is served" in missing.text
    idle = httpx.get(url, headers={"Host": "idle-alice.localhost"})
    assert idle.status_code == 503 and "no running web instances" in idle.text


def test_unchanged_routes_do_not_reload_and_changes_apply_without_errors(
        router: tuple[NginxRouter, str], backends: list[str]) -> None:
    r, url = router
    first = [Route(1, ("a.localhost",), (backends[0],))]
    assert r.apply(first) is True
    assert r.apply(first) is False
    failures = 0
    stop = threading.Event()

    def hammer() -> None:
        nonlocal failures
        # A new connection per request, as a browser retrying on a closed keep-alive would.
        with httpx.Client(headers={"Connection": "close"}) as client:
            while not stop.is_set():
                if client.get(url, headers={"Host": "a.localhost"}).status_code != 200:
                    failures += 1

    worker = threading.Thread(target=hammer)
    worker.start()
    for n in range(10):
        r.apply([Route(1, ("a.localhost",), (backends[n % 2],))])
    stop.set()
    worker.join()
    assert failures == 0
    assert httpx.get(url, headers={"Host": "a.localhost"}).text.split()[0] == \
        backends[1].split(":")[1]


def test_the_router_keeps_serving_after_its_owner_forgets_it(router: tuple[NginxRouter, str],
                                                             backends: list[str],
                                                             tmp_path: Path) -> None:
    r, url = router
    r.apply([Route(1, ("a.localhost",), (backends[0],))])
    pid = r.pid()
    again = NginxRouter(r.config)  # a restarted broker adopts the running nginx
    again.apply([Route(1, ("a.localhost",), (backends[0],))])
    assert again.pid() == pid
    assert httpx.get(url, headers={"Host": "a.localhost"}).status_code == 200


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV])
def test_a_router_that_died_is_back_on_its_own(router: tuple[NginxRouter, str],
                                               backends: list[str],
                                               how: signal.Signals) -> None:
    """A master killed with SIGKILL left its workers holding the port: every restart failed
    with `bind() ... Address already in use` and the apps answered nothing for minutes.
    Then it came back only at the next apply, which waits for a pool's pass. No apply here:
    the router starts its master again itself, with the routes last applied."""
    r, url = router
    routes = [Route(1, ("a.localhost",), (backends[0],))]
    r.apply(routes)
    master = r.pid()
    assert master is not None
    workers = children(master)
    os.kill(master, how)
    wait_until(lambda: r.pid() not in (None, master), 10, "a new master")
    wait_until(lambda: httpx.get(url, headers={"Host": "a.localhost"}).status_code == 200, 10,
               "the route to answer again")
    wait_until(lambda: not any(Path(f"/proc/{w}").exists() for w in workers), 10,
               "the old workers to go")


def test_a_stopped_router_stays_stopped(router: tuple[NginxRouter, str],
                                        backends: list[str]) -> None:
    r, _ = router
    r.apply([Route(1, ("a.localhost",), (backends[0],))])
    r.stop()
    time.sleep(5 * r.watch_every)
    assert r.pid() is None


def test_a_stale_pid_file_naming_another_process_is_not_the_router(
        router: tuple[NginxRouter, str], backends: list[str]) -> None:
    r, url = router
    routes = [Route(1, ("a.localhost",), (backends[0],))]
    r.apply(routes)
    master = r.pid()
    assert master is not None
    os.kill(master, signal.SIGKILL)
    wait_until(lambda: not Path(f"/proc/{master}").exists() or
               Path(f"/proc/{master}/stat").read_text().split()[2] == "Z", 10, "its death")
    (r.prefix / "nginx.pid").write_text(f"{os.getpid()}\n")  # a reused pid: this process
    assert r.pid() is None
    r.apply(routes)
    assert httpx.get(url, headers={"Host": "a.localhost"}).status_code == 200


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
