"""The OpenAPI document as integrators' code generators need it.

Every 201 and 202 answer carries ``Location``, the URL of what it created; the document says so.

FastAPI's OpenAPI model types numeric bounds as floats, so an integer field's bounds came out
as ``9.223372036854776e+18`` and ``1.0``, which generators turn into float literals that do not
compile against an integer type. Bounds of integer schemas are written back as integers.

The document also says what the API really answers when something is wrong: every problem is
``application/problem+json`` with the ``Problem`` schema (FastAPI declared it as
``application/json``, and its default 422 with a body shape the API never sends); every
operation can answer 422 (an unknown query parameter, text no field can hold), one with a JSON
body 400 (a body that is not JSON at all), and every operation that needs the database 503
(it is unreachable or too slow; send again), each with ``Retry-After``. Every ``/v1``
operation can answer 429 (the rate limits, with ``Retry-After`` and the RateLimit headers) and
one with a body 413 (over the size limit): the doors before every route send them.
"""

from __future__ import annotations

import json
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


PROBLEM = "application/problem+json"
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ALWAYS_LIVE = {"/healthz", "/readyz"}
"""Operations that answer without the database's help (readiness declares its own 503)."""

GENERIC_ERRORS: dict[str, str] = {
    "400": "The body is not JSON (a syntax error, or bytes that are not UTF-8)",
    "422": "The request is malformed or breaks a rule; `errors` names each field",
    "413": "The body is larger than the service takes (`HALSOSAMTAL_MAX_BODY_BYTES`; the CSV "
    "imports have their own, larger limit): refused before it was read whole",
    "429": "Too many requests from this client (its role's rate), or too many failed "
    "authentications from this address; send again after `Retry-After` seconds",
    "503": "The database is unreachable or did not answer in time; nothing was done, send the "
    "request again after `Retry-After` seconds (writes with the same Idempotency-Key are safe "
    "to repeat)",
}


RETRY_AFTER = {"description": "Seconds to wait", "schema": {"type": "integer"}}
RATE_LIMIT_HEADERS = {
    name: {"description": description, "schema": {"type": kind}}
    for name, description, kind in (
        ("RateLimit-Limit", "Requests allowed in the window (IETF draft RateLimit header fields)", "integer"),
        ("RateLimit-Remaining", "Requests left in the window", "integer"),
        ("RateLimit-Reset", "Seconds until the window ends", "integer"),
        ("RateLimit-Policy", "The limit and its window, as `<limit>;w=<seconds>`", "string"),
    )
}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM: {"schema": dict(PROBLEM_REF)}}}


def _json_body(operation: dict[str, Any]) -> bool:
    content = operation.get("requestBody", {}).get("content", {})
    return any(kind == "application/json" or kind.endswith("+json") for kind in content)


def problem_responses(document: dict[str, Any]) -> dict[str, Any]:
    """Declare every error answer as a problem: its media type, its schema, and the statuses
    any operation can answer whatever its handler does (400, 422, 503)."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for status, response in responses.items():
                content = response.get("content", {})
                schemas = [media.get("schema", {}) for media in content.values()]
                refs = {schema.get("$ref", "") for schema in schemas}
                is_problem = PROBLEM in content or any(
                    ref.endswith(("/Problem", "/HTTPValidationError")) for ref in refs
                )
                if status.startswith(("4", "5")) and is_problem:
                    response["content"] = {PROBLEM: {"schema": dict(PROBLEM_REF)}}
            wanted = ["422"]
            if _json_body(operation):
                wanted.append("400")
            if path.startswith("/v1/"):
                # The doors (halsosamtal/access/doors.py) stand before every /v1 route.
                wanted.append("429")
                if "requestBody" in operation:
                    wanted.append("413")
            if path not in ALWAYS_LIVE:
                wanted.append("503")
            for status in wanted:
                responses.setdefault(status, _problem(GENERIC_ERRORS[status]))
            if "429" in responses:
                responses["429"]["headers"] = {"Retry-After": RETRY_AFTER, **RATE_LIMIT_HEADERS}
            if "503" in responses and path not in ALWAYS_LIVE:
                responses["503"]["headers"] = {
                    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
                }
            operation["responses"] = dict(sorted(responses.items()))
    schemas = document.get("components", {}).get("schemas", {})
    text = json.dumps(document.get("paths", {}))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f'/{unused}"' not in text:
            del schemas[unused]
    return document


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
            app.openapi_schema = problem_responses(location_headers(integer_bounds(build())))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
