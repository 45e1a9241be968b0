"""A Kubernetes pool proven on a real node: through Cove's CLI, apps deployed from an image
and from `git push` run in containerd, answer through Traefik at their hostnames, scale,
change and roll back without a failed request, and stay apart on the wire.

The node (scripts/k8s-node) is real: kubelet runs the pods with runc, kube-proxy routes
Services, kube-router enforces NetworkPolicies and Traefik serves the Ingresses Cove
writes. Figures (deploy to first answer, repairs) are printed as JSON lines.
"""

from __future__ import annotations

import json
import subprocess
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import ApiError
from lightkube.codecs import from_dict
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod, Service
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType

from tests.node.conftest import DOMAIN
from tests.support.apps import dockerfile_app, git
from tests.support.cove import CliUser, CoveServer, requesting
from tests.support.k8s import RealNode, node_traces
from tests.support.services import Registry, wait_until


def answer(node: RealNode, host: str, path: str = "/") -> httpx.Response:
    return httpx.get(f"http://{node.ingress}{path}", headers={"Host": host}, timeout=5)


def text_of(node: RealNode, host: str) -> str:
    try:
        response = answer(node, host)
    except httpx.HTTPError:
        return ""
    return response.text if response.status_code == 200 else ""


def hammering(node: RealNode, host: str) -> AbstractContextManager[dict[str, Any]]:
    """Request the app through the ingress in a loop while the block runs."""
    return requesting(lambda: answer(node, host))


@pytest.fixture(scope="module")
def nora(ncove: CoveServer) -> CliUser:
    return ncove.user("nora")


@pytest.fixture(scope="module")
def shop(nora: CliUser, registry: Registry, real_node: RealNode) -> str:
    """Space "shop" on the node's pool, with the example app "web" serving."""
    nora.run("spaces", "create", "shop", "--pool", "node")
    nora.run("apps", "create", "web", "--space", "shop")
    began = time.monotonic()
    nora.run("deploy", "web", f"{registry.host}/examples/hello:1", "--space", "shop")
    wait_until(lambda: text_of(real_node, f"web-shop.{DOMAIN}").startswith(
        "hello from web release=v1"), 60, "the app to answer through Traefik")
    print(json.dumps({"deploy_to_first_answer_through_the_ingress_s":
                      round(time.monotonic() - began, 2)}))
    return "shop"


def pods_of(node: RealNode, ns: str, app: str) -> list[Pod]:
    """The app's pods that take traffic (Ready, not on their way out)."""
    return [p for p in node.plane.admin().list(Pod, namespace=ns, labels={"cove.dev/app": app})
            if p.status and not p.metadata.deletionTimestamp and any(
                c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]


def pod_of(node: RealNode, ns: str, app: str) -> Pod:
    pods = pods_of(node, ns, app)
    assert pods, f"no ready pod of {app} in {ns}"
    return pods[0]


def test_an_image_runs_for_real_and_answers_at_its_hostname(
        real_node: RealNode, nora: CliUser, shop: str) -> None:
    response = answer(real_node, f"web-shop.{DOMAIN}")
    assert response.status_code == 200
    pod = pod_of(real_node, "cove-shop", "web")
    # Traefik answered with the real pod's name: a real container served it.
    assert f"instance={pod.metadata.name}" in response.text
    assert answer(real_node, f"nobody-shop.{DOMAIN}").status_code == 404
    info = json.loads(nora.run("apps", "info", "web", "--space", shop, "--json").stdout)
    assert info["url"] == f"http://web-shop.{DOMAIN}/"


def test_logs_come_from_the_real_containers(real_node: RealNode, nora: CliUser,
                                            shop: str) -> None:
    answer(real_node, f"web-shop.{DOMAIN}", "/seen-in-the-logs")
    wait_until(lambda: "GET /seen-in-the-logs" in nora.run("logs", "web", "--space",
                                                            shop).stdout,
               30, "the request in the app's own log")
    assert "listening on :8000" in nora.run("logs", "web", "--space", shop).stdout


def test_restricted_pods_really_run_without_privileges(real_node: RealNode,
                                                       shop: str) -> None:
    pod = pod_of(real_node, "cove-shop", "web")
    said = real_node.plane.kubectl("exec", "-n", "cove-shop", pod.metadata.name, "--",
                                   "/hello", "whoami")
    assert "Uid: 10001 10001 10001 10001" in said
    assert "CapEff: 0000000000000000" in said and "CapPrm: 0000000000000000" in said
    assert "NoNewPrivs: 1" in said
    assert "Seccomp: 2" in said  # filtering: the runtime's default profile
    assert "root filesystem: read-only" in said


def test_scale_config_and_rollback_lose_no_request(real_node: RealNode, nora: CliUser,
                                                   shop: str) -> None:
    s = ("--space", shop)
    host = f"web-shop.{DOMAIN}"
    with hammering(real_node, host) as stats:
        nora.run("scale", "web", "web=3", *s)
        nora.run("config", "set", "web", "GREETING=hi", *s)
        wait_until(lambda: text_of(real_node, host).startswith("hi from web"), 30,
                   "the new config to answer")
        nora.run("rollback", "web", "v1", *s)
        wait_until(lambda: text_of(real_node, host).startswith("hello from web release=v3"),
                   30, "the rollback to answer")
    assert stats["failed"] == 0, stats["errors"][:10]
    assert stats["ok"] > 50 and {"v1", "v2", "v3"} <= stats["releases"]
    dep = real_node.plane.admin().get(Deployment, "web-web", namespace="cove-shop")
    assert dep.status.readyReplicas == 3


def test_a_crashing_release_is_undone_while_the_old_pods_serve(
        real_node: RealNode, nora: CliUser, shop: str) -> None:
    s = ("--space", shop)
    host = f"web-shop.{DOMAIN}"
    nora.run("apps", "update", "web", "--health-timeout", "10", *s)
    with hammering(real_node, host) as stats:
        failed = nora.run("config", "set", "web", "EXIT_AT_START=4", *s, ok=False,
                          timeout=240)
    assert "the previous release keeps serving" in failed.stderr
    # Reported as soon as a container exited, with its code and last words (not after
    # the rollout's deadline).
    assert "exited with code 4" in failed.stderr
    assert "cannot start: EXIT_AT_START=4 is set" in failed.stderr
    assert stats["failed"] == 0, stats["errors"][:10]
    # The crashing release (v4) never answered; v3 did throughout (pods of v2 that the
    # previous test's rollback replaced may still answer in the first moments).
    assert "v4" not in stats["releases"] and "v3" in stats["releases"], stats["releases"]
    assert text_of(real_node, host).startswith("hello from web release=v3")
    assert "EXIT_AT_START" not in nora.run("config", "web", *s).stdout


def fetch(node: RealNode, pod: Pod, url: str) -> str:
    """`hello fetch URL` run inside a running app's container: what that pod can reach."""
    proc = subprocess.run([str(node.plane.bin / "kubectl"), "--kubeconfig",
                           str(node.plane.kubeconfig), "exec", "-n", pod.metadata.namespace,
                           pod.metadata.name, "--", "/hello", "fetch", url],
                          capture_output=True, text=True, timeout=60)
    return proc.stdout + proc.stderr


def neighbours(node: RealNode, user: CliUser, space: str) -> list[Pod]:
    """Two ready pods of the space's app "web" (scaled to 3 if it has fewer than 2)."""
    ns = f"cove-{space}"
    if len(pods_of(node, ns, "web")) < 2:
        user.run("scale", "web", "web=3", "--space", space)
        wait_until(lambda: len(pods_of(node, ns, "web")) >= 2, 60, "a neighbour in the space")
    return pods_of(node, ns, "web")[:2]


@pytest.fixture(scope="module")
def rita(ncove: CoveServer, nora: CliUser, registry: Registry, real_node: RealNode,
         shop: str) -> CliUser:
    """Another tenant: admin of space "rival" on the same pool (and of nothing of shop's),
    with the example app "other" serving at its own hostname."""
    rita = ncove.user("rita")
    rita.signup()
    nora.run("spaces", "create", "rival", "--pool", "node")
    nora.run("members", "add", "rival", "rita", "--role", "admin")
    rita.run("apps", "create", "other", "--space", "rival")
    rita.run("deploy", "other", f"{registry.host}/examples/hello:1", "--space", "rival")
    wait_until(lambda: text_of(real_node, f"other-rival.{DOMAIN}").startswith(
        "hello from other"), 60, "the rival app to answer through Traefik")
    return rita


def test_spaces_stay_apart_on_the_wire(real_node: RealNode, nora: CliUser, rita: CliUser,
                                      shop: str) -> None:
    """NetworkPolicies enforced by the node: a pod of one space cannot reach another
    space's pods; it reaches its own space's (and, with DNS, its Services by name)."""
    mine, neighbour = neighbours(real_node, nora, shop)
    theirs = pod_of(real_node, "cove-rival", "other")
    assert fetch(real_node, mine, f"http://{neighbour.status.podIP}:8000/").startswith(
        "200 hello from web")
    refused = fetch(real_node, mine, f"http://{theirs.status.podIP}:8000/")
    assert refused.startswith("error:"), refused
    refused = fetch(real_node, theirs, f"http://{mine.status.podIP}:8000/")
    assert refused.startswith("error:"), refused
    if dns_allowed(real_node, nora, shop):
        # The Service's name resolves and routes within the space, not across spaces.
        assert fetch(real_node, mine, "http://web/").startswith("200 hello from web")
        refused = fetch(real_node, theirs, "http://web.cove-shop/")
        assert refused.startswith("error:"), refused


def dns_allowed(node: RealNode, user: CliUser, space: str) -> bool:
    """Whether the space's template lets its pods use DNS; if so the node must serve it
    (the DNS checks would otherwise pass without checking anything)."""
    info = json.loads(user.run("spaces", "info", space, "--json").stdout)
    allowed = bool(info["network"]["allow_dns"])
    assert node.env.get("DNS") or not allowed, "the template allows DNS; the node has none"
    return allowed


def served_ports(pod: Pod) -> set[int]:
    """The TCP ports a pod declares or is probed on."""
    ports: set[int] = set()
    for c in pod.spec.containers:
        ports |= {p.containerPort for p in c.ports or [] if p.protocol in (None, "TCP")}
        for probe in (c.readinessProbe, c.livenessProbe, c.startupProbe):
            if probe and probe.httpGet and isinstance(probe.httpGet.port, int):
                ports.add(probe.httpGet.port)
    return ports


def closed_to_tenants(node: RealNode) -> list[str]:
    """What a tenant's pod must not reach: the API server (the node's forward to it and the
    `kubernetes` Service), kube-system's pods on any port but DNS, and the router (its pod
    and the node's port it listens on)."""
    client = node.plane.admin()
    api = client.get(Service, "kubernetes", namespace="default").spec.clusterIP
    urls = [f"http://{node.env['APISERVER_FORWARD']}/", f"http://{api}:443/",
            f"http://{node.ingress}/"]
    for ns in ("kube-system", node.env["ROUTER_NAMESPACE"]):
        for pod in client.list(Pod, namespace=ns):
            urls += [f"http://{pod.status.podIP}:{port}/"
                     for port in sorted(served_ports(pod) - {53})]
    return urls


def answers_the_host(url: str) -> bool:
    try:
        httpx.get(url, timeout=5)  # a TLS port answers plain HTTP with a 400
    except httpx.HTTPError:
        return False
    return True


def test_pods_reach_only_what_the_template_allows(real_node: RealNode, nora: CliUser,
                                                 shop: str) -> None:
    """A tenant's pod reaches its own space and, as the template allows, DNS; nothing of
    the platform: each target answers the host, so the pod's refusal is its policy, not a
    dead port."""
    mine, neighbour = neighbours(real_node, nora, shop)
    assert fetch(real_node, mine, f"http://{neighbour.status.podIP}:8000/").startswith(
        "200 hello from web")
    if dns_allowed(real_node, nora, shop):
        assert fetch(real_node, mine, "http://web/").startswith("200 hello from web")
    closed = closed_to_tenants(real_node)
    # The API server twice, the router's node port and pod ports, CoreDNS's other ports.
    assert len(closed) >= 5 + 2 * bool(real_node.env.get("DNS")), closed
    for url in closed:
        assert answers_the_host(url), f"{url} does not answer even the host"
        refused = fetch(real_node, mine, url)
        assert refused.startswith("error:"), f"{url} answered a tenant's pod: {refused}"


def hijacks(node: RealNode, host: str, pod_ip: str) -> list[dict[str, Any]]:
    """What a tenant would write in their namespace (cove-rival) to take shop's traffic:
    an Ingress for shop's hostname; a Service without a selector and hand-written
    Endpoints and EndpointSlice naming shop's pod; an EndpointSlice adding shop's pod to
    the rival app's own Service (where the router sends the rival's hostname)."""
    ns = "cove-rival"
    port = [{"name": "http", "port": 8000, "protocol": "TCP"}]

    def slice_of(name: str, service: str) -> dict[str, Any]:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": ns,
                             "labels": {"kubernetes.io/service-name": service}},
                "addressType": "IPv4", "ports": port,
                "endpoints": [{"addresses": [pod_ip], "conditions": {"ready": True}}]}

    rule = {"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {
        "service": {"name": "other", "port": {"number": 80}}}}]}}
    return [
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "hijack", "namespace": ns},
         "spec": {"ingressClassName": node.env["INGRESS_CLASS"], "rules": [rule]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "steal", "namespace": ns},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8000}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "steal", "namespace": ns},
         "subsets": [{"addresses": [{"ip": pod_ip}], "ports": port}]},
        slice_of("steal-1", "steal"),
        slice_of("other-hijack", "other"),
    ]


def instances_answering(node: RealNode, host: str, times: int = 40) -> set[str]:
    """The pods that answered `times` requests for `host` through the router (the example
    app names its pod)."""
    names = set()
    for _ in range(times):
        response = answer(node, host)
        assert response.status_code == 200, (host, response.status_code, response.text)
        names.add(response.text.split("instance=")[1].split()[0])
    return names


def pod_names(node: RealNode, ns: str) -> set[str]:
    """Every pod of a namespace, ready or not, on its way in or out."""
    return {p.metadata.name for p in node.plane.admin().list(Pod, namespace=ns)}


def test_another_tenant_cannot_take_shops_hostnames_or_pods(
        real_node: RealNode, nora: CliUser, rita: CliUser, shop: str) -> None:
    """Rita, admin of space rival, tries to route shop's hostnames or shop's pods to her
    space, through the cluster and through Cove: all is refused, and on the wire shop's
    hostnames answer from shop's pods and rival's from rival's, request after request."""
    host, custom = f"web-shop.{DOMAIN}", "shop.example.test"
    nora.run("domains", "add", "web", custom, "--space", shop)
    wait_until(lambda: text_of(real_node, custom).startswith("hello from web"), 30,
               "shop's custom domain to answer")
    attempts = hijacks(real_node, host, pod_of(real_node, "cove-shop", "web").status.podIP)
    as_rita = real_node.plane.user("cove:rita")
    for attempt in attempts:
        with pytest.raises(ApiError) as err:
            as_rita.create(from_dict(attempt))
        assert err.value.status.code == 403, attempt
    with pytest.raises(ApiError) as err:  # nor may she add shop's hostname to her own route
        as_rita.patch(Ingress, "other", [{"op": "add", "path": "/spec/rules/-",
                                          "value": attempts[0]["spec"]["rules"][0]}],
                      namespace="cove-rival", patch_type=PatchType.JSON)
    assert err.value.status.code == 403
    # Where RBAC does not stop a writer (a cluster admin), Cove's admission policies do.
    for attempt in attempts[:2]:
        with pytest.raises(ApiError) as err:
            real_node.plane.admin().create(from_dict(attempt))
        assert "ValidatingAdmissionPolicy" in (err.value.status.message or ""), attempt
    for claimed, why in ((host, "Cove's own domain"), (custom, "already in use")):
        refused = rita.run("domains", "add", "other", claimed, "--space", "rival", ok=False)
        assert why in refused.stderr, refused.stderr
    assert_each_space_serves_its_own_hostnames(real_node, host, custom)


def assert_each_space_serves_its_own_hostnames(node: RealNode, *shops: str) -> None:
    """On the wire: shop's hostnames are answered by shop's pods only, rival's by rival's."""
    shop_pods, rival_pods = pod_names(node, "cove-shop"), pod_names(node, "cove-rival")
    assert not shop_pods & rival_pods
    for host in shops:
        assert instances_answering(node, host) <= shop_pods, host
    assert instances_answering(node, f"other-rival.{DOMAIN}") <= rival_pods


def test_git_push_is_built_pushed_and_pulled_by_the_node(
        real_node: RealNode, nora: CliUser, registry: Registry, shop: str,
        tmp_path: Path) -> None:
    s = ("--space", shop)
    nora.run("apps", "create", "pushed", *s)
    work = dockerfile_app(tmp_path / "pushed", "pushed to a real node")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-qm", "first")
    url = nora.run("git", "remote", "pushed", *s).stdout.strip()
    pushed = git(work, "push", url.replace("nora@", f"nora:{nora.token}@"), "main")
    assert "released v1" in pushed.stderr
    assert f"{registry.host}/pool/{shop}/pushed" in pushed.stderr
    wait_until(lambda: text_of(real_node, f"pushed-shop.{DOMAIN}").startswith(
        "pushed to a real node from pushed"), 60, "the pushed app to answer")


def test_taking_the_node_down_leaves_the_host_as_it_was(real_node: RealNode) -> None:
    """Last in this package: `k8s-node down` fails when the host's iptables rules differ
    from before `up` or anything else of the node is left; and nothing is (processes,
    ipsets, nfacct counters, network namespaces, cgroups, links, mounts)."""
    real_node.down()
    after = node_traces(real_node.plane.state, real_node.env["NODE_IP"])
    left = {what: found - real_node.before[what] for what, found in after.items()}
    assert not any(left.values()), left
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True,
                           timeout=60).stdout
    assert "cove-node0" not in links
    mounts = Path("/proc/self/mounts").read_text()
    assert str(real_node.plane.state) not in mounts
