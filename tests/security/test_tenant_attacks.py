"""Attacks a tenant could make on the local pool, each a class of hole, with its variants.

Every test here failed before the fix it proves (see the notes of the change that added
it); the cross-tenant sweep of tests/e2e/test_attacks.py stays beside them.
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.support.cove import CliUser, CoveServer, make_server
from tests.support.services import Postgres, Registry, free_port, wait_until


def api_error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()["error"]
    return response.status_code, body["code"], body["message"]


# -- operators keep their powers -------------------------------------------------------------

def operator(server: CoveServer) -> CliUser:
    return server.users.get("ops") or server.admin("ops")


def test_a_tenant_cannot_demote_the_platform_admin_in_its_space(cove: CoveServer) -> None:
    ops = operator(cove)
    demoter = cove.tenant("demoter")
    demoter.run("members", "add", "demoter", "ops", "--role", "viewer")
    # Still a space admin there: the audit log and the members are the operator's to manage.
    assert "member.set" in ops.run("audit", "demoter").stdout
    ops.run("members", "remove", "demoter", "ops")
    ops.run("spaces", "quota", "demoter", "apps=11")


# -- builds fetch nothing from the host --------------------------------------------------------

@pytest.fixture
def listener() -> Iterator[tuple[str, list[str]]]:
    """An HTTP service on the host's loopback that records who fetched what."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"host secret\n")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()


@pytest.mark.parametrize("add", [
    "ADD http://{host}/secret /secret",
    'ADD ["http://{host}/secret", "/secret"]',
    "ADD --chmod=644 http://{host}/secret /secret",
    "ADD git@{host}:repo.git /src",
])
def test_add_of_a_url_is_refused_before_the_host_fetches_it(
        cove: CoveServer, listener: tuple[str, list[str]], busybox_ref: str, tmp_path: Path,
        add: str) -> None:
    host, hits = listener
    user = cove.users.get("adder") or cove.tenant("adder", "fetch")
    source = tmp_path / "src"
    source.mkdir()
    (source / "Dockerfile").write_text(f"FROM {busybox_ref}\n{add.format(host=host)}\n")
    out = user.run("push", "fetch", str(source), ok=False)
    assert "ADD of a URL or a git repository is fetched by the build host" in out.stdout
    assert hits == []


# -- image references are no port scanner -----------------------------------------------------

def test_registries_on_this_machine_are_refused_with_one_answer(cove: CoveServer,
                                                                registry: Registry) -> None:
    """A closed port, an HTTP service (Cove's own API) and an SSH-like banner must look the
    same; the operator's registry still works."""
    scanner = cove.tenant("scanner", "scan")
    banner = socket.socket()
    banner.bind(("127.0.0.1", 0))
    banner.listen()

    def greet() -> None:  # until the socket closes (Cove may never connect at all)
        with contextlib.suppress(OSError):
            while True:
                with banner.accept()[0] as peer:
                    peer.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

    threading.Thread(target=greet, daemon=True).start()
    targets = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{cove.api_port}",
               f"127.0.0.1:{banner.getsockname()[1]}", f"localhost:{cove.router_port}",
               "[::1]:22", "[::ffff:127.0.0.1]:80", "127.1:8080", "169.254.169.254",
               "0.0.0.0:5000"]
    answers = set()
    with scanner.api() as api:
        for target in targets:
            response = api.post("/v1/spaces/scanner/apps/scan/deploys",
                                json={"image": f"{target}/probe:1"})
            status, code, message = api_error(response)
            answers.add((status, code, message.replace(target, "TARGET")))
        ok = api.post("/v1/spaces/scanner/apps/scan/deploys",
                      json={"image": f"{registry.host}/examples/hello:1"})
    banner.close()
    assert len(answers) == 1, answers
    status, code, message = answers.pop()
    assert (status, code) == (422, "registry_refused") and "COVE_LOCAL_REGISTRIES" in message
    assert ok.status_code == 201, ok.text


# -- domains a tenant must not route ------------------------------------------------------------

@pytest.mark.parametrize("domain", [
    "127.0.0.1", "0.0.0.0", "1.2.3.4", "localhost", "app.localhost",
    "router-check.cove.invalid", "x.invalid", "1.0.0.127.in-addr.arpa", "printer.local",
    "db.internal",
])
def test_reserved_and_odd_domains_are_refused(cove: CoveServer, domain: str) -> None:
    user = cove.users.get("dom") or cove.tenant("dom", "site")
    with user.api() as api:
        response = api.post("/v1/spaces/dom/apps/site/domains", json={"hostname": domain})
    assert response.status_code == 422, response.text
    assert api_error(response)[1] == "invalid"


def test_a_longest_legal_domain_routes_and_breaks_no_one(cove: CoveServer,
                                                        registry: Registry) -> None:
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 56, "test"])
    assert len(long_name) == 253
    owner, other = cove.tenant("longdom", "site"), cove.tenant("bystander", "web")
    owner.run("deploy", "site", f"{registry.host}/examples/hello:1")
    owner.run("domains", "add", "site", long_name)
    assert cove.app_get(long_name).status_code == 200
    # Every other tenant's route changes keep working.
    other.run("deploy", "web", f"{registry.host}/examples/hello:1")
    other.run("domains", "add", "web", "www.bystander.test")
    assert cove.app_get("www.bystander.test").status_code == 200


# -- bounded input ---------------------------------------------------------------------------

def test_every_input_is_bounded_with_a_4xx(cove: CoveServer, registry: Registry) -> None:
    user = cove.tenant("bounds", "app")
    user.run("deploy", "app", f"{registry.host}/examples/hello:1")
    base = "/v1/spaces/bounds/apps/app"
    with user.api() as api:
        big = {f"K{i}": "x" * 1000 for i in range(100)}  # 100 KiB of config
        answers = [
            api.patch(f"{base}/config", json={"vars": big}),
            api.patch(f"{base}/config", json={"vars": {f"V{i}": "1" for i in range(300)}}),
            api.post(f"{base}/rollback", json={"version": 1e30}),
            api.post(f"{base}/rollback", json={"version": -1}),
            api.get(f"{base}/builds/{2**63}/log"),
            api.get("/v1/spaces/bounds/audit", params={"limit": -5}),
            api.get("/v1/spaces/bounds/audit", params={"limit": 10**9}),
            api.patch(f"{base}/formation", json={"web": {"count": 10**12}}),
            api.get(f"{base}/logs", params={"tail": -1}),
        ]
        for response in answers:
            assert 400 <= response.status_code < 500, (response.request.url, response.text)
        assert api.get(f"{base}/config").json() == {}  # nothing of the refused config stayed
    git = httpx.get(f"{cove.url}/git/bounds/app.git/../../etc/passwd",
                    auth=("bounds", user.token))
    assert git.status_code == 404
    git = httpx.get(f"{cove.url}/git/bounds/app.git/objects/info/packs",
                    auth=("bounds", user.token))
    assert git.status_code == 404  # only what smart HTTP asks for is served


# -- quotas hold under concurrency -------------------------------------------------------------

def _concurrently(calls: list[object]) -> list[httpx.Response]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))  # type: ignore[operator]


def quota_race(server: CoveServer, name: str, registry: Registry) -> None:
    ops = operator(server)
    user = server.tenant(name)
    ops.run("spaces", "quota", name, "apps=10")
    with user.api() as api:
        made = _concurrently([
            (lambda n=n: api.post(f"/v1/spaces/{name}/apps", json={"name": f"a{n}"}))
            for n in range(20)])
        assert sorted({r.status_code for r in made}) == [201, 403]
        assert sum(r.status_code == 201 for r in made) == 10
        created = [a["name"] for a in api.get(f"/v1/spaces/{name}/apps").json()]
        assert len(created) == 10
    ops.run("spaces", "quota", name, "instances=6")
    first, second = created[:2]  # whichever won the race
    user.run("deploy", first, f"{registry.host}/examples/hello:1")
    user.run("deploy", second, f"{registry.host}/examples/hello:1")
    with user.api() as api:
        scaled = _concurrently([
            (lambda app=app: api.patch(f"/v1/spaces/{name}/apps/{app}/formation",
                                       json={"web": {"count": 4}}))
            for app in (first, second)])
        assert sorted(r.status_code for r in scaled) == [200, 403], [r.text for r in scaled]
        counts = [api.get(f"/v1/spaces/{name}/apps/{a}/formation").json()["web"]["count"]
                  for a in (first, second)]
    assert sum(counts) <= 6, counts


def test_quotas_hold_under_concurrent_requests_on_sqlite(cove: CoveServer,
                                                         registry: Registry) -> None:
    quota_race(cove, "racer", registry)


def test_quotas_hold_under_concurrent_requests_on_postgresql(pg_cove: CoveServer,
                                                             registry: Registry) -> None:
    quota_race(pg_cove, "pgracer", registry)


@pytest.fixture(scope="module")
def pg_cove(workdir: Path, registry: Registry, postgres: Postgres) -> Iterator[CoveServer]:
    """A Cove on PostgreSQL, in a database of its own."""
    admin = sa.create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("CREATE DATABASE security_quota"))
    server = make_server(workdir / "security-pg", COVE_DATABASE_URL=postgres.url.rsplit(
        "/", 1)[0] + "/security_quota")
    server.start()
    yield server
    server.teardown()
    with admin.connect() as conn:
        conn.execute(sa.text("DROP DATABASE security_quota WITH (FORCE)"))
    admin.dispose()



# -- derived names are one app's only ---------------------------------------------------------

def test_a_tenant_cannot_take_over_another_tenants_address(cove: CoveServer,
                                                         registry: Registry) -> None:
    """Space alice2 + app my-shop and space shop-alice2 + app my both derive
    my-shop-alice2.localhost (and used to share container names, each removing the
    other's instances)."""
    victim = cove.tenant("alice2", "my-shop")
    victim.run("deploy", "my-shop", f"{registry.host}/examples/hello:1")
    squatter = cove.user("squat")
    squatter.signup()
    squatter.run("spaces", "create", "shop-alice2")
    refused = squatter.run("apps", "create", "my", "--space", "shop-alice2", ok=False)
    assert "the address my-shop-alice2 is taken" in refused.stderr
    # Names that do not clash still work, and the victim keeps serving and running.
    squatter.run("apps", "create", "mine", "--space", "shop-alice2")
    squatter.run("deploy", "mine", f"{registry.host}/examples/hello:1", "--space", "shop-alice2")
    answer = cove.app_get("my-shop-alice2.localhost")
    assert answer.status_code == 200 and "hello from my-shop" in answer.text
    ps = victim.run("ps", "my-shop", "--json").stdout
    assert '"up"' in ps


def test_instances_of_look_alike_apps_keep_apart(cove: CoveServer, registry: Registry) -> None:
    """Space lk + app a-b and space lk-a + app b: the same `<space>-<app>` prefix, which
    named both apps' containers alike."""
    one = cove.tenant("lk", "a-b")
    two = cove.user("lka")
    two.signup()
    two.run("spaces", "create", "lk-a")
    two.run("apps", "create", "b", "--space", "lk-a")
    one.run("deploy", "a-b", f"{registry.host}/examples/hello:1")
    two.run("deploy", "b", f"{registry.host}/examples/hello:1", "--space", "lk-a")
    one.run("scale", "a-b", "web=2")
    two.run("scale", "b", "web=2", "--space", "lk-a")
    for user, app, extra in ((one, "a-b", ()), (two, "b", ("--space", "lk-a"))):
        states = user.run("ps", app, "--json", *extra).stdout
        assert states.count('"up"') == 2, (app, states)


# -- idle streams do not starve the API ------------------------------------------------------

def test_idle_log_streams_neither_starve_the_api_nor_pile_up(cove: CoveServer,
                                                             registry: Registry) -> None:
    """48 idle `logs -f` from six tenants (more than the API's worker threads): every other
    request still answers, and a ninth stream of one tenant is refused."""
    users = [cove.tenant(f"idle{n}", "app") for n in range(6)]
    clients = [httpx.Client(base_url=cove.url, timeout=10,
                            headers={"Authorization": f"Bearer {u.token}"}) for u in users]
    streams = []
    try:
        for client, user in zip(clients, users, strict=True):
            for _ in range(8):
                stream = client.stream("GET", f"/v1/spaces/{user.name}/apps/app/logs",
                                       params={"follow": "true", "tail": 0})
                response = stream.__enter__()
                assert response.status_code == 200
                streams.append(stream)
        me = clients[0].get("/v1/me")  # would wait for a free worker: there is none
        assert me.status_code == 200 and me.json()["name"] == "idle0"
        ninth = clients[0].get("/v1/spaces/idle0/apps/app/logs", params={"follow": "true"})
        assert ninth.status_code == 429 and api_error(ninth)[1] == "rate_limited"
    finally:
        for stream in streams:
            stream.__exit__(None, None, None)
        for client in clients:
            client.close()
    # Closed streams give their slots back (once the server has seen the clients go).
    with users[0].api() as api:
        wait_until(lambda: api.get("/v1/spaces/idle0/apps/app/logs",
                                   params={"tail": 1}).status_code == 200, 10, "a free slot")


# -- builds cannot reach the build host ------------------------------------------------------

@pytest.mark.parametrize("mount, refusal", [
    # CVE-2024-1753, as reproduced: a stage's symlink to / mounted the host's root
    ("type=bind,from=base,source=/rootdir,destination=/exploit,rw",
     "RUN --mount=type=bind is not available"),
    # the same through the build context: its link is refused with the upload already
    ("type=bind,source=link,destination=/exploit,rw",
     "links may not point to absolute paths"),
])
def test_a_build_cannot_mount_the_hosts_root(cove: CoveServer, busybox_ref: str,
                                            tmp_path: Path, mount: str, refusal: str) -> None:
    """A stage (or the context) holds a symlink to /; a bind mount of it would mount the
    build host's root, writable, into the step (buildah 1.28)."""
    marker = Path(f"/cove-breakout-{tmp_path.name}")
    user = cove.users.get("breaker") or cove.tenant("breaker", "esc")
    source = tmp_path / "src"
    source.mkdir()
    if "source=link" in mount:
        (source / "link").symlink_to("/")
    (source / "Dockerfile").write_text(
        f"FROM {busybox_ref} AS base\nRUN ln -s / /rootdir\n"
        f"FROM {busybox_ref}\n"
        f"RUN --mount={mount} touch /exploit{marker} && ls /exploit/etc\n")
    try:
        out = user.run("push", "esc", str(source), ok=False)
        assert not marker.exists(), "the build wrote to the host's root"
        assert refusal in out.stdout + out.stderr
    finally:
        marker.unlink(missing_ok=True)
