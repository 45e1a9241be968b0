"""Resolving and pulling images from a real registry, with and without credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from cove.adapters.engine import Engine
from cove.adapters.registry.images import RegistryResolver
from cove.domain.errors import ImageError, Invalid
from cove.ports.registry import Credentials
from tests.support.services import Registry, free_port


@pytest.fixture
def resolver(tmp_path: Path) -> RegistryResolver:
    return RegistryResolver(Engine(tmp_path / "engine"), timeout=20)


def test_a_tag_resolves_to_a_pullable_digest(resolver: RegistryResolver,
                                             registry: Registry) -> None:
    ref = resolver.resolve(f"{registry.host}/examples/hello:1")
    assert ref.startswith(f"{registry.host}/examples/hello@sha256:")
    assert resolver.engine.run("image", "exists", ref, check=False).returncode == 0


@pytest.mark.parametrize("image, code", [
    ("{host}/examples/hello:no-such-tag", "image_not_found"),
    ("{host}/nobody/nothing:1", "image_not_found"),
    ("127.0.0.1:{closed}/examples/hello:1", "registry_unreachable"),
])
def test_bad_references_say_what_is_wrong(resolver: RegistryResolver, registry: Registry,
                                          image: str, code: str) -> None:
    with pytest.raises(ImageError) as err:
        resolver.resolve(image.format(host=registry.host, closed=free_port()))
    assert err.value.code == code


def test_malformed_references_are_invalid(resolver: RegistryResolver) -> None:
    for bad in ("UPPER/Case:1", "-rm", "http://x/y"):
        with pytest.raises(Invalid):
            resolver.resolve(bad)


def test_credentials_are_required_and_checked(resolver: RegistryResolver,
                                              private_registry: Registry) -> None:
    image = f"{private_registry.host}/team/hello:1"
    with pytest.raises(ImageError) as anonymous:
        resolver.resolve(image)
    assert anonymous.value.code == "registry_auth"
    with pytest.raises(ImageError) as wrong:
        resolver.resolve(image, Credentials("deployer", "wrong"))
    assert wrong.value.code == "registry_auth"
    assert "@sha256:" in resolver.resolve(image, Credentials("deployer", "s3cret-pass"))
