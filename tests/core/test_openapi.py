from __future__ import annotations

from services.api.openapi import OPENAPI_PATH, document, render


def test_committed_openapi_document_matches_the_app() -> None:
    assert OPENAPI_PATH.exists(), "run `make openapi` to write openapi/openapi.json"
    assert OPENAPI_PATH.read_text(encoding="utf-8") == render(), (
        "openapi/openapi.json is out of date: run `make openapi` and commit it"
    )


def test_every_operation_has_a_stable_id_a_description_and_problem_responses() -> None:
    ids = []
    for path, operations in document()["paths"].items():
        for method, op in operations.items():
            assert op.get("operationId"), f"{method} {path} has no operation_id"
            assert op.get("description") or op.get("summary"), f"{method} {path} has no docstring"
            ids.append(op["operationId"])
            if path not in ("/healthz", "/readyz"):
                for status in ("401", "403"):
                    content = op["responses"][status]["content"]
                    assert "application/problem+json" in content, f"{method} {path} {status}"
    assert len(ids) == len(set(ids))


def test_integer_bounds_are_integers_for_code_generators() -> None:
    """FastAPI's OpenAPI model writes numeric bounds as floats (9.223372036854776e+18, 1.0);
    generated clients then do not compile against integer fields."""
    from services.api.app import create_app

    found: list[str] = []

    def walk(node: object, path: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "integer":
                found.extend(
                    f"{path}/{key}"
                    for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
                    if isinstance(node.get(key), float)
                )
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(create_app().openapi(), "")
    assert not found, found
