"""Registry errors are read from what the registry said, never from the reference itself."""

from __future__ import annotations

import pytest

from cove.adapters.registry.images import _classify
from cove.domain.errors import ImageError


@pytest.mark.parametrize("port", ["36401", "40403", "14044", "5000"])
def test_a_missing_tag_is_not_found_whatever_the_port(port: str) -> None:
    image = f"127.0.0.1:{port}/examples/hello:nope"
    error = _classify(image, f'Error parsing image name "docker://{image}": reading manifest '
                             f"nope in 127.0.0.1:{port}/examples/hello: manifest unknown")
    assert isinstance(error, ImageError) and error.code == "image_not_found"


def test_a_refusal_is_still_a_refusal() -> None:
    error = _classify("r.example/a:1", "reading manifest: unexpected status code 401")
    assert isinstance(error, ImageError) and error.code == "registry_auth"
