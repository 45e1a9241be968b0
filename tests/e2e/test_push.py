"""`cove push`: upload a directory, build it in a sandbox, release it."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import uuid
from pathlib import Path

from tests.support.cove import CoveServer
from tests.support.services import hello_binary_path


def dockerfile_app(root: Path, greeting: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(hello_binary_path(), root / "hello")
    (root / "Dockerfile").write_text(
        f'FROM scratch\nCOPY hello /hello\nENV GREETING="{greeting}"\n'
        'USER 10001:10001\nCMD ["/hello"]\n')
    (root / ".coveignore").write_text("*.tmp\n")
    (root / "scratch.tmp").write_text("not uploaded")
    return root


def test_push_builds_releases_and_keeps_serving_through_failures(cove: CoveServer,
                                                                 tmp_path: Path) -> None:
    pat = cove.user("pat")
    pat.signup()
    pat.run("apps", "create", "site")
    source = dockerfile_app(tmp_path / "site", "built here")
    first = pat.run("push", "site", str(source))
    assert "==> build 1 succeeded: released v1" in first.stdout
    assert "COMMIT" in first.stdout or "STEP" in first.stdout  # the builder's own output
    assert cove.app_get("site-pat.localhost").text.startswith("built here from site")

    dockerfile_app(source, "second push")
    assert "released v2" in pat.run("push", "site", str(source)).stdout
    assert cove.app_get("site-pat.localhost").text.startswith("second push from site")

    (source / "Dockerfile").write_text("FROM localhost/cove-test/does-not-exist:1\n")
    failed = pat.run("push", "site", str(source), ok=False)
    assert "==> build 3 failed: the build failed" in failed.stdout
    assert cove.app_get("site-pat.localhost").text.startswith("second push from site")
    builds = json.loads(pat.run("builds", "site", "--json").stdout)
    assert [(b["number"], b["status"], b["release"]) for b in builds] == [
        (3, "failed", None), (2, "succeeded", "v2"), (1, "succeeded", "v1")]
    assert "does-not-exist" in pat.run("builds", "site", "--log", "3").stdout

    (source / "Dockerfile").unlink()
    missing = pat.run("push", "site", str(source), ok=False)
    assert "no Dockerfile" in missing.stdout


def test_a_hostile_upload_is_refused_and_writes_nothing_outside(cove: CoveServer) -> None:
    quinn = cove.user("quinn")
    quinn.signup()
    quinn.run("apps", "create", "evil")
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
