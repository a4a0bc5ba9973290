"""Bad input to the real API process is a 4xx naming the field, and the process keeps serving.

The reliability probe found these over real sockets: a NUL in a query, a body or a path, and a
forged cursor answered 500. The in-process walk over every operation is
tests/core/test_bad_input_on_every_operation.py; this pins the same behaviour where uvicorn
parses the URL and the body, the way clients reach it.
"""

from __future__ import annotations

import base64

import httpx
import pytest

from tests.product.conftest import Product

PROBLEM = "application/problem+json"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _named(response: httpx.Response) -> set[tuple[str, str]]:
    assert response.status_code == 422, f"{response.request.url}: {response.status_code} {response.text}"
    assert response.headers["content-type"] == PROBLEM
    return {(e["location"], e["pointer"]) for e in response.json()["errors"]}


def test_a_nul_in_a_query_a_body_or_a_path_is_a_422_naming_it(product: Product) -> None:
    op = product.operator
    query = product.api.get("/v1/invitations", params={"care_unit": "SE2321000131-E\x00"}, headers=op)
    assert _named(query) == {("query", "/care_unit")}
    body = product.api.post("/v1/residents/lookup", json={"personnummer": "19870504\x000018"}, headers=op)
    assert _named(body) == {("body", "/personnummer")}
    path = product.api.get("/v1/care-units/SE2321000131-E%00", headers=op)
    assert _named(path) == {("path", "/hsa_id")}
    lone = product.api.post(
        "/v1/residents/lookup",
        content=b'{"personnummer": "\\udead"}',
        headers={**op, "Content-Type": "application/json"},
    )
    assert _named(lone) == {("body", "/personnummer")}
    assert product.api.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "cursor",
    [
        _b64(b'["x"]'),
        _b64(b"[1e20]"),
        _b64(b"[true]"),
        _b64(b"[" + b"9" * 40 + b"]"),
        _b64(b"[1, 2]"),
        "%%not-base64%%",
        "A" * 500,
    ],
    ids=["string", "float", "boolean", "huge", "two-values", "not-base64", "too-long"],
)
def test_a_forged_cursor_is_a_422_on_cursor(product: Product, cursor: str) -> None:
    for url in ("/v1/invitations", "/v1/messages/failed"):
        response = product.api.get(url, params={"cursor": cursor}, headers=product.operator)
        assert _named(response) == {("query", "/cursor")}


def test_a_body_that_is_not_json_is_a_400_problem(product: Product) -> None:
    headers = {**product.operator, "Content-Type": "application/json"}
    for raw in (b'{"personnummer": ', b"\xff\xfe", b"[" * 50_000):
        response = product.api.post("/v1/residents/lookup", content=raw, headers=headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["code"] == "malformed-body"
