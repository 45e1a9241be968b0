"""Resolve an image reference to a digest (skopeo) and pull it by digest (podman)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cove.adapters.engine import Engine, EngineError
from cove.domain.errors import ImageError, Invalid
from cove.ports.registry import Credentials

# Substrings of skopeo's errors, most specific first, with what the user should do.
_ERRORS = (
    (("invalid reference format", "repository name must be lowercase"), None,
     "is not a valid image reference: use registry/name:tag or registry/name@sha256:..."),
    (("unauthorized", "authentication required", "denied", "401", "403 forbidden"), "registry_auth",
     "was refused by its registry: check the credentials (--username/--password-stdin) and "
     "that the account may pull it"),
    (("manifest unknown", "not found", "name unknown", "404"), "image_not_found",
     "does not exist: check the repository name and tag"),
    (("connection refused", "no such host", "i/o timeout", "dial tcp", "network is unreachable",
      "timeout", "server gave http response"), "registry_unreachable",
     "could not be fetched because its registry is unreachable: check the registry address and "
     "that it is up, then deploy again"),
)


def registry_of(image: str) -> str:
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def repository_of(image: str) -> str:
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: len(name) - len(last)] + last.split(":", 1)[0]
    return name


class RegistryResolver:
    def __init__(self, engine: Engine, insecure: tuple[str, ...] = ("localhost", "127.0.0.1"),
                 skopeo: str = "skopeo", timeout: float = 120) -> None:
        self.engine = engine
        self.insecure = insecure
        self.skopeo = skopeo
        self.timeout = timeout

    def _tls_verify(self, image: str) -> str:
        host = registry_of(image).split(":", 1)[0]
        return "false" if host in self.insecure else "true"

    @contextmanager
    def _authfile(self, image: str, credentials: Credentials | None) -> Iterator[list[str]]:
        """Credentials go through a private file, never the command line (visible in ps)."""
        if credentials is None:
            yield []
            return
        token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode())
        fd, path = tempfile.mkstemp(prefix="cove-auth-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                json.dump({"auths": {registry_of(image): {"auth": token.decode()}}}, handle)
            yield ["--authfile", path]
        finally:
            os.unlink(path)

    def resolve(self, image: str, credentials: Credentials | None = None) -> str:
        if image.startswith("-") or "://" in image:
            raise Invalid(f"{image!r} is not a valid image reference: use registry/name:tag")
        tls = self._tls_verify(image)
        with self._authfile(image, credentials) as auth:
            try:
                proc = subprocess.run(
                    [self.skopeo, "inspect", "--no-tags", "--format", "{{.Digest}}",
                     f"--tls-verify={tls}", *auth, f"docker://{image}"],
                    capture_output=True, text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                raise ImageError(f"image {image} could not be fetched: the registry did not "
                                 f"answer within {self.timeout:.0f}s",
                                 code="registry_unreachable") from None
            if proc.returncode != 0:
                raise _classify(image, proc.stderr)
            digest = proc.stdout.strip()
            ref = f"{repository_of(image)}@{digest}"
            try:
                self.engine.run("pull", "--quiet", f"--tls-verify={tls}", *auth, ref,
                                timeout=self.timeout * 5)
            except EngineError as err:
                raise _classify(image, err.stderr) from err
        return ref


    def publish(self, image_id: str, reference: str) -> str:
        with tempfile.TemporaryDirectory(prefix="cove-publish-") as work:
            digestfile = Path(work) / "digest"
            tls = self._tls_verify(reference)
            try:
                proc = subprocess.run(
                    [self.skopeo, "copy", "--quiet", f"--dest-tls-verify={tls}",
                     "--digestfile", str(digestfile), f"containers-storage:{image_id}",
                     f"docker://{reference}"],
                    capture_output=True, text=True, timeout=self.timeout * 5, env=self.engine.env)
            except subprocess.TimeoutExpired:
                raise ImageError(f"the pool's registry {registry_of(reference)} did not take "
                                 "the image in time", code="registry_unreachable") from None
            if proc.returncode != 0:
                raise _classify(reference, proc.stderr)
            return digestfile.read_text().strip()


def _classify(image: str, stderr: str) -> Exception:
    text = stderr.lower()
    for needles, code, advice in _ERRORS:
        if any(n in text for n in needles):
            if code is None:
                return Invalid(f"{image!r} {advice}")
            return ImageError(f"image {image} {advice}", code=code)
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "unknown error"
    return ImageError(f"image {image} could not be fetched: {detail}")
