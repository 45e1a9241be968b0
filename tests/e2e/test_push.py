"""`cove push`: upload a directory, build it in a sandbox, release it."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from cove.adapters.builder.stacks import Stack
from cove.adapters.engine import Engine
from tests.conftest import PRIVATE_CREDS
from tests.support.apps import APPS, dockerfile_app, git
from tests.support.cove import CoveServer, hammering, make_server
from tests.support.services import Registry, wait_until

# What the dependency cache holds once an example's dependencies were installed.
CACHED = {"python": "six-1.16.0-*.whl", "node": "express-4.21.2.tgz"}


def test_push_builds_releases_and_keeps_serving_through_failures(cove: CoveServer,
                                                                 tmp_path: Path) -> None:
    pat = cove.tenant("pat", "site")
    source = dockerfile_app(tmp_path / "site", "built here")
    first = pat.run("push", "site", str(source))
    assert "==> build 1 succeeded: released v1" in first.stdout
    assert "COMMIT" in first.stdout or "STEP" in first.stdout  # the builder's own output
    assert cove.app_get("site-pat.localhost").text.startswith("built here from site")

    dockerfile_app(source, "second push")
    with hammering(cove, "site-pat.localhost") as stats:
        assert "released v2" in pat.run("push", "site", str(source)).stdout
    assert stats["failed"] == 0 and stats["ok"] > 5  # nobody noticed the switch
    assert cove.app_get("site-pat.localhost").text.startswith("second push from site")

    (source / "Dockerfile").write_text("FROM localhost/cove-test/does-not-exist:1\n")
    failed = pat.run("push", "site", str(source), ok=False)
    assert "==> build 3 failed: Dockerfile: base image localhost/cove-test/does-not-exist:1 " \
        "is not one builds may use" in failed.stdout
    assert cove.app_get("site-pat.localhost").text.startswith("second push from site")
    builds = json.loads(pat.run("builds", "site", "--json").stdout)
    assert [(b["number"], b["status"], b["release"]) for b in builds] == [
        (3, "failed", None), (2, "succeeded", "v2"), (1, "succeeded", "v1")]
    assert "does-not-exist" in pat.run("builds", "site", "--log", "3").stdout

    (source / "Dockerfile").unlink()
    missing = pat.run("push", "site", str(source), ok=False)
    assert "cannot tell how to build this source" in missing.stdout

    def built_images() -> list[str]:
        listed = Engine(tmp_path / "engine").run("images", "--format", "{{.Repository}}")
        return [r for r in listed.stdout.split() if r == "localhost/cove-builds/pat/site"]

    assert built_images()
    pat.run("apps", "destroy", "site")
    assert built_images() == []  # a destroyed app's images go with it


def test_a_hostile_upload_is_refused_and_writes_nothing_outside(cove: CoveServer) -> None:
    quinn = cove.tenant("quinn", "evil")
    target = f"/tmp/cove-escape-{uuid.uuid4().hex}"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"../../../../../..{target}")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"pwn"))
    with quinn.api() as api:
        response = api.post("/v1/spaces/quinn/apps/evil/builds", content=buffer.getvalue())
    assert response.status_code == 200
    assert "refused archive entry" in response.text and "failed" in response.text
    assert not Path(target).exists()
    with quinn.api() as api:
        other = api.post("/v1/spaces/pat/apps/site/builds", content=buffer.getvalue())
    assert other.status_code == 404  # another tenant's app: not even found


def test_git_push_builds_and_deploys(cove: CoveServer, tmp_path: Path) -> None:
    rae = cove.tenant("rae", "shop")
    work = dockerfile_app(tmp_path / "shop", "pushed with git")
    git(work, "init", "-q", "-b", "main")
    git(work, "add", ".")
    git(work, "commit", "-qm", "first")
    url = rae.run("git", "remote", "shop").stdout.strip()  # outside a work tree: the URL
    assert url.endswith("/git/rae/shop.git")
    assert "Added git remote cove" in rae.run("git", "remote", "shop", cwd=work).stdout
    assert git(work, "remote", "get-url", "cove").stdout.strip() == url
    authed = url.replace("rae@", f"rae:{rae.token}@")
    pushed = git(work, "push", authed, "main")
    assert "remote: ==> build 1 succeeded: released v1" in pushed.stderr
    assert cove.app_get("shop-rae.localhost").text.startswith("pushed with git from shop")

    refused = git(work, "push", authed, "main:feature", ok=False)
    assert "pushes to refs/heads/feature are not deployed" in refused.stderr

    (work / "Dockerfile").write_text("FROM localhost/cove-test/does-not-exist:1\n")
    git(work, "commit", "-qam", "break it")
    broken = git(work, "push", authed, "main", ok=False)
    assert "remote: ==> build 2 failed" in broken.stderr and "pre-receive hook declined" \
        in broken.stderr
    assert cove.app_get("shop-rae.localhost").text.startswith("pushed with git from shop")

    clone = git(tmp_path, "clone", "-q", authed, str(tmp_path / "copy"))
    assert clone.returncode == 0 and (tmp_path / "copy" / "Dockerfile").exists()
    stranger = cove.user("sam")
    stranger.signup()
    theirs = url.replace("rae@", f"sam:{stranger.token}@")
    # another tenant's repository is not found (404), without a token git must ask (401)
    assert "not found" in git(tmp_path, "clone", "-q", theirs, str(tmp_path / "x"),
                              ok=False).stderr
    anonymous = git(tmp_path, "clone", "-q", url.replace("rae@", ""), str(tmp_path / "y"),
                    ok=False).stderr
    assert "could not read Username" in anonymous


def test_a_static_site_needs_no_dockerfile(cove: CoveServer, tmp_path: Path) -> None:
    tess = cove.tenant("tess", "docs")
    site = tmp_path / "docs"
    shutil.copytree(APPS / "static", site)
    out = tess.run("push", "docs", str(site)).stdout
    assert "static app detected" in out and "released v1" in out
    assert cove.app_get("docs-tess.localhost").text == "<h1>Static docs</h1>\n"
    assert "teal" in cove.app_get("docs-tess.localhost", "/css/site.css").text
    assert cove.app_get("docs-tess.localhost", "/.cove-static-server").status_code == 404
    (site / "index.html").unlink()
    (site / "css" / "site.css").unlink()
    (site / "notes.txt").write_text("nothing to build here")
    nothing = tess.run("push", "docs", str(site), ok=False)
    assert "cannot tell how to build this source" in nothing.stdout


def test_procfile_processes_and_the_release_command(cove: CoveServer, tmp_path: Path,
                                                    stack: Stack) -> None:
    uma = cove.tenant("uma", "jobs")
    source = tmp_path / "jobs"
    shutil.copytree(APPS / "worker", source)
    out = uma.run("push", "jobs", str(source)).stdout
    assert "release command" in out and "released v1" in out
    assert "migrating for v1" in uma.run("logs", "jobs").stdout
    info = json.loads(uma.run("apps", "info", "jobs", "--json").stdout)
    assert info["process_types"] == ["web", "worker"]
    assert info["formation"]["worker"]["count"] == 0  # workers start when scaled
    uma.run("scale", "jobs", "worker=1")
    assert sorted(i["name"] for i in json.loads(uma.run("ps", "jobs", "--json").stdout)) == [
        "web.1", "worker.1"]
    wait_until(lambda: "working on v1" in uma.run("logs", "jobs").stdout, 20, "the worker")

    failed = uma.run("config", "set", "jobs", "FAIL_RELEASE=1", ok=False)
    assert "release command failed (exit 1)" in failed.stderr
    assert "migration failed" in uma.run("logs", "jobs").stdout
    assert cove.app_get("jobs-uma.localhost").text == "jobs web on v1\n"


LANGUAGES = {
    # example app: (what the buildpack says, the code file, what the app answers)
    "python": ("python app detected", "app.py", "python says {} (six 1.16.0, {})\n"),
    "node": ("nodejs app detected", "server.js", "node says {} (express 4.21.2, {})\n"),
    "go": ("go app detected", "main.go", "go says {} (go1.19.8, {})\n"),
    "dockerfile": ("Dockerfile detected", "server.py", "dockerfile says {} ({})\n"),
}


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_language_app_builds_on_the_stack_and_code_pushes_reuse_its_dependencies(
        cove: CoveServer, tmp_path: Path, stack: Stack, language: str) -> None:
    detected, code, answer = LANGUAGES[language]
    user = cove.tenant(f"lang-{language}", language)
    host = f"{language}-lang-{language}.localhost"
    source = tmp_path / language
    shutil.copytree(APPS / language, source)
    first = user.run("push", language, str(source)).stdout
    assert detected in first and "released v1" in first
    if language in CACHED:  # the dependencies came through the builds' dependency cache
        assert list((cove.home / "dependencies").rglob(CACHED[language])), first
    assert cove.app_get(host).text == answer.format("hi", "v1")
    app = source / code
    app.write_text(app.read_text().replace("says hi", "says hello"))
    with hammering(cove, host) as stats:
        second = user.run("push", language, str(source)).stdout
    if language in ("python", "node"):  # the image ends with the code: no build runs
        assert "only the code changed" in second
    else:
        assert "Using cache" in second  # the dependency layer was not rebuilt
    assert stats["failed"] == 0 and stats["ok"] > 5
    assert cove.app_get(host).text == answer.format("hello", "v2")
    # the app's image is the run image plus the app: no compilers or package managers
    image = f"localhost/cove-builds/lang-{language}/{language}:build-2"
    found = Engine(tmp_path / "engine").run(
        "run", "--rm", "--entrypoint", "sh", image, "-c",
        "for tool in go npm gcc; do command -v $tool; done; echo checked").stdout
    assert found.split() == ["checked"]


def test_builds_beyond_the_quota_wait_for_a_slot(cove: CoveServer, tmp_path: Path,
                                                 busybox_ref: str) -> None:
    import subprocess as sp
    import sys

    from tests.support.cove import CliUser

    wes = cove.user("wes")
    wes.signup()
    root = cove.admin("root-op")
    root.run("spaces", "quota", "wes", "builds=1")
    sources = []
    for n in range(2):
        wes.run("apps", "create", f"q{n}")
        sources.append(dockerfile_app(tmp_path / f"q{n}", f"queued {n}"))
        # a slow step keeps the single slot busy while the other push arrives
        (sources[n] / "Dockerfile").write_text(
            f"FROM {busybox_ref}\nRUN sleep 4 && echo {n} > /queued\nCOPY hello /hello\n"
            f'ENV GREETING="queued {n}"\nUSER 10001:10001\nCMD ["/hello"]\n')

    def push(user: CliUser, n: int) -> sp.Popen[str]:
        return sp.Popen([sys.executable, "-m", "cove.cli.main", "push", f"q{n}",
                         str(sources[n])], env=user.env, stdout=sp.PIPE, text=True,
                        cwd=tmp_path)

    first, second = push(wes, 0), push(wes, 1)
    outputs = [p.communicate(timeout=300)[0] for p in (first, second)]
    assert all("succeeded" in out for out in outputs), outputs
    assert sum("waiting for a build slot" in out for out in outputs) >= 1


def test_everyone_sees_the_stacks_and_only_a_platform_admin_rebuilds_them(
        cove: CoveServer, stack: Stack, tmp_path: Path) -> None:
    yan = cove.user("yan")
    yan.signup()
    shown = {s["role"]: s for s in json.loads(yan.run("stacks", "--json").stdout)}
    assert shown["build"]["image"] == stack.build and shown["run"]["image"] == stack.run
    assert shown["build"]["id"] and shown["run"]["id"]
    assert shown["build"]["size_mb"] > shown["run"]["size_mb"]  # compilers stay behind
    refused = yan.run("stacks", "build", ok=False)
    assert "only a platform admin builds stacks" in refused.stderr

    # An operator whose Debian mirror is down learns why, and nothing is replaced.
    other = make_server(tmp_path, COVE_DEBIAN_MIRROR="http://127.0.0.1:9/debian",
                        COVE_BUILD_IMAGE="localhost/cove-test/stack-build:none",
                        COVE_RUN_IMAGE="localhost/cove-test/stack-run:none",
                        COVE_BUILDER_IMAGE="localhost/cove-test/builder:none")
    other.start()
    try:
        admin = other.admin("ops")
        assert "not built: `cove stacks build`" in admin.run("stacks").stdout
        failed = admin.run("stacks", "build", ok=False).stdout
        assert "-----> debootstrap bookworm" in failed
        assert "==> stack build failed: debootstrap failed" in failed
        shown_now = json.loads(admin.run("stacks", "--json").stdout)
        assert all(s["id"] is None for s in shown_now), shown_now
    finally:
        other.teardown()


def test_a_build_cannot_start_from_or_poison_another_spaces_images(
        cove: CoveServer, tmp_path: Path, busybox_ref: str, private_registry: Registry) -> None:
    victim, attacker = cove.user("vivian"), cove.user("oscar")
    for user, page in ((attacker, "owned by oscar"), (victim, "vivian's page")):
        user.signup()
        user.run("apps", "create", "site")
        source = tmp_path / user.name
        source.mkdir()
        (source / "index.html").write_text(page)
        # the same instruction in both spaces; what it makes differs each time it runs, so a
        # layer cached in one space and reused in the other would show
        (source / "Dockerfile").write_text(
            f"FROM {busybox_ref}\n"
            "RUN mkdir /www && head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \\n' > /www/id\n"
            "COPY index.html /www/\n"
            'USER 10001:10001\nCMD ["sh", "-c", "exec httpd -f -p $PORT -h /www"]\n')
        assert "released v1" in user.run("push", "site", str(source)).stdout
    assert cove.app_get("site-vivian.localhost").text == "vivian's page"
    ids = {cove.app_get(f"site-{u}.localhost", "/id").text for u in ("vivian", "oscar")}
    assert len(ids) == 2, ids  # not one space's cached layer in the other's image

    steal = tmp_path / "steal"
    steal.mkdir()
    (steal / "Dockerfile").write_text("FROM localhost/cove-builds/vivian/site:build-1\n")
    out = attacker.run("push", "site", str(steal), ok=False).stdout
    assert "is not one builds may use" in out

    # An image vivian pulled with her registry credentials is in this machine's store, but
    # oscar's build must fetch it as oscar would: without credentials.
    private = f"{private_registry.host}/team/hello:1"
    victim.run("apps", "create", "private")
    victim.run("deploy", "private", private, "--username", PRIVATE_CREDS[0],
               "--password-stdin", input=PRIVATE_CREDS[1] + "\n")
    (steal / "Dockerfile").write_text(f"FROM {private}\n")
    out = attacker.run("push", "site", str(steal), ok=False).stdout
    assert "was refused by its registry" in out
    assert cove.app_get("site-oscar.localhost").text == "owned by oscar"


def test_a_cached_dependency_layer_gives_what_a_cold_build_gives(
        cove: CoveServer, tmp_path: Path, stack: Stack) -> None:
    """After an app was destroyed and made again (and for a new app of the space), the same
    requirements hit a cached layer whose virtualenv held only pip and setuptools. Also:
    two cold builds of one manifest at once, and one cut off by the server's death."""
    import subprocess as sp
    import sys

    user = cove.tenant("cachy", "shop", "blog", "news")
    source = tmp_path / "python"
    shutil.copytree(APPS / "python", source)
    answer = LANGUAGES["python"][2]

    def answers(app: str, release: str) -> bool:
        return cove.app_get(f"{app}-cachy.localhost").text == answer.format("hi", release)

    user.run("push", "shop", str(source))
    assert answers("shop", "v1")
    [wheel] = (cove.home / "dependencies").rglob(CACHED["python"])
    fetched = wheel.stat().st_ino
    user.run("apps", "destroy", "shop", "--yes")
    user.run("apps", "create", "shop")
    again = user.run("push", "shop", str(source)).stdout
    assert "Using cache" in again and answers("shop", "v1")

    # A manifest never built: two cold builds of it at once, then a cached one.
    (source / "requirements.txt").write_text("six==1.16.0  # both at once\n")
    pushes = [sp.Popen([sys.executable, "-m", "cove.cli.main", "push", app, str(source)],
                       env=user.env, stdout=sp.PIPE, text=True, cwd=tmp_path)
              for app in ("shop", "blog")]
    outputs = [p.communicate(timeout=600)[0] for p in pushes]
    assert all("succeeded" in out for out in outputs), outputs
    assert answers("shop", "v2") and answers("blog", "v1")
    user.run("push", "news", str(source))
    assert answers("news", "v1")

    # Another new manifest, its build cut off while pip installs it, then built again.
    (source / "requirements.txt").write_text("six==1.16.0  # cut off\n")
    push = sp.Popen([sys.executable, "-m", "cove.cli.main", "push", "news", str(source)],
                    env=user.env, stdout=sp.PIPE, text=True, cwd=tmp_path)
    assert push.stdout is not None
    for line in push.stdout:
        if "Collecting six" in line:
            cove.kill()
            break
    else:
        raise AssertionError("the build never reached pip")
    push.kill()
    push.wait()
    cove.start()
    user.run("push", "news", str(source))
    assert answers("news", "v2")
    # Every cold build after the first installed six from the cache (fetched once).
    assert wheel.stat().st_ino == fetched


def image_tree(engine: Engine, image: str) -> dict[str, tuple[object, ...]]:
    """Every path of an image's filesystem: type, mode, owner, size, link, content."""
    made = engine.run("create", "--pull=never", image).stdout.strip()
    try:
        out = subprocess.run([engine.binary, "export", made], capture_output=True,
                             env=engine.env, check=True, timeout=300).stdout
    finally:
        engine.run("rm", made, check=False)
    found = {}
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        for m in tar.getmembers():
            content = tar.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(content.read()).hexdigest() if content else ""
            found[m.name.rstrip("/")] = (m.type, m.mode, m.uid, m.gid, m.size, m.linkname,
                                         digest)
    return found


def image_config(engine: Engine, image: str) -> dict[str, object]:
    config = engine.json("image", "inspect", image)[0]["Config"]
    config["Labels"] = {k: v for k, v in (config.get("Labels") or {}).items()
                        if k != "cove.build-scope"}  # one per app: apps differ there
    return config  # type: ignore[no-any-return]


def test_a_code_only_push_gives_the_image_a_build_gives(cove: CoveServer, tmp_path: Path,
                                                        stack: Stack) -> None:
    """A push that changes only code skips the build: its image must be the one a build
    of the same source makes, links kept as links."""
    user = cove.tenant("quick", "fast", "full")
    source = tmp_path / "python"
    shutil.copytree(APPS / "python", source)
    answer = LANGUAGES["python"][2]
    first = user.run("push", "fast", str(source)).stdout
    assert "only the code changed" not in first
    (source / "app.py").write_text((source / "app.py").read_text().replace("says hi",
                                                                           "says quickly"))
    (source / "lib" / "empty").mkdir(parents=True)
    (source / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (source / "tool.sh").chmod(0o750)
    (source / "libs").symlink_to("lib")  # (uploads refuse links out of the tree)
    second = user.run("push", "fast", str(source)).stdout
    assert "only the code changed" in second and "Using cache" not in second
    assert cove.app_get("fast-quick.localhost").text == answer.format("quickly", "v2")
    built = user.run("push", "full", str(source)).stdout  # another app: built in full
    assert "only the code changed" not in built
    engine = Engine(tmp_path / "engine")
    fast, full = "localhost/cove-builds/quick/fast:build-2", \
        "localhost/cove-builds/quick/full:build-1"
    fast_tree, full_tree = image_tree(engine, fast), image_tree(engine, full)
    assert fast_tree["app/libs"][0] == tarfile.SYMTYPE and fast_tree["app/libs"][5] == "lib"
    assert fast_tree == full_tree
    assert image_config(engine, fast) == image_config(engine, full)

    # New dependencies are built; the app made again after destroy builds anew.
    (source / "requirements.txt").write_text("six==1.16.0  # changed\n")
    assert "only the code changed" not in user.run("push", "fast", str(source)).stdout
    assert cove.app_get("fast-quick.localhost").text == answer.format("quickly", "v3")
    user.run("apps", "destroy", "fast", "--yes")
    user.run("apps", "create", "fast")
    assert "only the code changed" not in user.run("push", "fast", str(source)).stdout
    assert cove.app_get("fast-quick.localhost").text == answer.format("quickly", "v1")
