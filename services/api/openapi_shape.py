"""The OpenAPI document as integrators' code generators need it.

Every 201 and 202 answer carries ``Location``, the URL of what it created; the document says so.

FastAPI's OpenAPI model types numeric bounds as floats, so an integer field's bounds came out
as ``9.223372036854776e+18`` and ``1.0``, which generators turn into float literals that do not
compile against an integer type. Bounds of integer schemas are written back as integers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def integer_bounds(node: Any) -> Any:
    """Walk a JSON document; in every schema of type integer, integral float bounds become ints."""
    if isinstance(node, dict):
        if node.get("type") == "integer":
            for key in BOUNDS:
                value = node.get(key)
                if isinstance(value, float) and value.is_integer():
                    node[key] = int(value) if abs(value) < 2**63 else 2**63 - 1
        for value in node.values():
            integer_bounds(value)
    elif isinstance(node, list):
        for value in node:
            integer_bounds(value)
    return node


LOCATION = {
    "description": "The URL of what was created (relative to the API's root)",
    "schema": {"type": "string", "examples": ["/v1/results/42"]},
}


def location_headers(document: dict[str, Any]) -> dict[str, Any]:
    """Declare ``Location`` on every 201 and 202 response of the document."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status in ("201", "202"):
                    response.setdefault("headers", {})["Location"] = LOCATION
    return document


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` answer the reshaped document (built once, as FastAPI does)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = location_headers(integer_bounds(build()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
