"""The OpenAPI document describes every answer: a client generated from it, or a fuzzer
driven by it, meets no status and no body it was not told about."""

from __future__ import annotations

from typing import Any

import pytest

from cove.api.app import create_api


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    api = create_api(None)  # type: ignore[arg-type]  # the document needs no context
    return api.openapi()


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in document["paths"].items()
            for method, op in ops.items()]


def test_every_operation_documents_its_errors_in_the_one_envelope(
        document: dict[str, Any]) -> None:
    assert len(operations(document)) > 30
    for method, path, op in operations(document):
        for status in ("400", "401", "403", "404", "409", "422"):
            answer = op["responses"].get(status)
            assert answer, (method, path, status)
            schema = answer["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("/ErrorOut"), (method, path, status)


def test_every_success_has_a_described_body(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        for status, answer in op["responses"].items():
            if not status.startswith("2") or status == "204":
                continue
            content = answer.get("content") or {}
            assert content, (method, path, status)
            schema = content.get("application/json", {}).get("schema")
            if schema is not None:  # JSON: a model, a list of them, or typed values
                described = "$ref" in schema or "items" in schema or \
                    isinstance(schema.get("additionalProperties"), dict)
                assert described, (method, path, schema)


def test_names_carry_the_name_rule(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for model in ("SignupIn", "SpaceIn", "AppIn"):
        name = schemas[model]["properties"]["name"]
        assert name["pattern"].startswith("^[a-z]") and name["maxLength"] == 30
