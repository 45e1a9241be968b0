"""Resolve an image reference to a digest (skopeo) and pull it by digest (podman)."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import socket
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


REFUSED = ("is on an address of this machine or its link: only registries the operator "
           "lists (COVE_LOCAL_REGISTRIES) may be used there")


def _on_this_host(host: str) -> bool:
    """Whether a registry host is (or resolves to) a loopback, link-local or unspecified
    address: this machine's own services and the cloud's metadata endpoint."""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False  # cannot resolve: skopeo says so in the user's terms
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or (
                ip.version == 6 and ip.ipv4_mapped is not None
                and (ip.ipv4_mapped.is_loopback or ip.ipv4_mapped.is_link_local)):
            return True
    return False


class RegistryResolver:
    def __init__(self, engine: Engine, insecure: tuple[str, ...] = ("localhost", "127.0.0.1"),
                 skopeo: str = "skopeo", timeout: float = 120,
                 local: tuple[str, ...] | None = None) -> None:
        self.engine = engine
        self.insecure = insecure
        self.skopeo = skopeo
        self.timeout = timeout
        # host:port of registries on this machine that tenants may use (None: any, for
        # callers that are the operator, not a tenant).
        self.local = local

    def check_registry(self, image: str) -> None:
        """Refuse a registry on this machine unless listed, with one answer for every port,
        so image references cannot map the host's services."""
        if self.local is None:
            return
        registry = registry_of(image)
        host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
        host = host.strip("[]")
        if registry in self.local or not _on_this_host(host):
            return
        raise ImageError(f"the registry of image {image} {REFUSED}", code="registry_refused")

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
        self.check_registry(image)
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
    # The reference itself is left out of what is searched (a port such as :36401 must not
    # read as HTTP 401), and needles match whole words only.
    text = stderr.lower().replace(image.lower(), " ").replace(registry_of(image).lower(), " ")
    for needles, code, advice in _ERRORS:
        if any(re.search(rf"(?<![\w.:]){re.escape(n)}(?![\w])", text) for n in needles):
            if code is None:
                return Invalid(f"{image!r} {advice}")
            return ImageError(f"image {image} {advice}", code=code)
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else "unknown error"
    return ImageError(f"image {image} could not be fetched: {detail}")
