"""Bad input on every operation is a 4xx that names the field, never a 5xx.

The operations and their parameters are read from the OpenAPI document, so an operation or a
field added later is probed without editing this file: a NUL or half a surrogate pair in every
path, query and JSON body field; forged cursors; the wrong JSON type for every integer and
boolean; days and times far outside the service's years; and personal data, which no error
answer may echo.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from halsosamtal.units.models import CareUnit
from services.api.app import create_app
from tests.conftest import KeyMaker
from tests.tokens import TestIdp

DOCUMENT = create_app().openapi()
SCHEMAS: dict[str, Any] = DOCUMENT["components"]["schemas"]
PROBLEM = "application/problem+json"

NUL = "a\x00b"
PERSONNUMMER = "19121212-1212"
ADDRESS = "Storgatan 12 B"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FORGED_CURSORS = [
    _b64(b'["x"]'),
    _b64(b"[1e20]"),
    _b64(b"[true]"),
    _b64(b"[null]"),
    _b64(b"[-1]"),
    _b64(b"[0]"),
    _b64(b"[1.5]"),
    _b64(b"[" + b"9" * 400 + b"]"),
    _b64(b"[" + b"9" * 40 + b"]"),
    _b64(b"[1, 2, 3]"),
    _b64(b"[]"),
    _b64(b"{}"),
    _b64(b'"2027-03-02T08:00:00+01:00"'),
    _b64(b'["9999-12-31T23:59:59-12:00", 1]'),
    _b64(b'["2027-03-02T08:00:00", 1]'),
    _b64(b'[["x"], {"a": 1}]'),
    _b64(b"not json"),
    _b64(b"\xff\xfe\x00"),
    "!!!not base64!!!",
    "a",
    "åäö",
    "A" * 5000,
]
WRONG_INTEGERS_IN_JSON: list[Any] = [True, "12", 1.5, 12.0, 1e20, 2**70, -(2**70)]
WRONG_INTEGERS_IN_TEXT = ["true", "1e20", "9" * 30, "-9" + "9" * 30, "1.5", "0x10", ""]
FAR_DAYS = ["9999-12-31", "0001-01-01", "1999-12-31", "2101-01-01", "2027-02-30", "+12345-01-01"]
FAR_TIMES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2027-03-02T08:00:00"]
WRONG_BOOLEANS_IN_JSON: list[Any] = ["true", 1, 0, "yes", None]


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        present = [s for s in schema["anyOf"] if s.get("type") != "null"]
        if len(present) == 1:
            return _resolve({**{k: v for k, v in schema.items() if k != "anyOf"}, **present[0]})
    return schema


class Sample:
    """Valid-looking values for a schema, so a probe changes one field of an otherwise usable
    request."""

    def __init__(self, unit: CareUnit) -> None:
        self.unit = unit

    def value(self, schema: dict[str, Any], name: str = "") -> Any:
        schema = _resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            required = schema.get("required", [])
            return {k: self.value(v, k) for k, v in schema.get("properties", {}).items() if k in required}
        if kind == "array":
            return [self.value(schema.get("items", {}), name)] * max(1, schema.get("minItems", 1))
        if kind == "integer":
            low, high = schema.get("minimum", 1), schema.get("maximum", 2**31)
            return (
                2027 if low <= 2027 <= high and low >= 1900 else max(low, min(high, 40 if low >= 18 else 1))
            )
        if kind == "number":
            return max(schema.get("minimum", 1), 1)
        if kind == "boolean":
            return False
        if schema.get("format") == "date":
            return "2027-03-01"
        if schema.get("format") == "date-time":
            return "2027-03-02T08:00:00+01:00"
        if schema.get("format") == "time":
            return "08:00"
        if "personnummer" in name:
            return "198705040018"
        if schema.get("pattern", "").startswith("^SE"):
            return self.unit.hsa_id
        return "x" * max(1, schema.get("minLength", 1))

    def text(self, schema: dict[str, Any], name: str) -> str:
        value = self.value(schema, name)
        return str(value).lower() if isinstance(value, bool) else str(value)


def _paths(
    schema: dict[str, Any], prefix: tuple[str | int, ...] = (), depth: int = 0
) -> Iterator[tuple[tuple[str | int, ...], dict[str, Any]]]:
    """Every field of a body schema (through objects and array items), with its schema."""
    schema = _resolve(schema)
    if depth > 3:
        return
    for name, sub in schema.get("properties", {}).items():
        path = (*prefix, name)
        yield path, _resolve(sub)
        yield from _paths(sub, path, depth + 1)
    if _resolve(schema).get("type") == "array" and prefix:
        yield from _paths(schema.get("items", {}), (*prefix, 0), depth + 1)


def _set(body: Any, path: tuple[str | int, ...], value: Any, sample: Sample, schema: dict[str, Any]) -> Any:
    """``body`` with ``value`` at ``path``, building the containers on the way from ``schema``."""
    if not path:
        return value
    schema = _resolve(schema)
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) and body else [sample.value(schema.get("items", {}))]
        items[0] = _set(items[0], rest, value, sample, schema.get("items", {}))
        return items
    sub = schema.get("properties", {}).get(head, {})
    current = dict(body) if isinstance(body, dict) else {}
    current[head] = _set(current.get(head, sample.value(sub, head)), rest, value, sample, sub)
    return current


def _pointer(path: tuple[str | int, ...]) -> str:
    return "/" + "/".join(str(p) for p in path)


class Operation:
    def __init__(self, method: str, path: str, spec: dict[str, Any]) -> None:
        self.method, self.path, self.spec = method.upper(), path, spec
        self.params = [p for p in spec.get("parameters", []) if p["in"] in ("path", "query")]
        content = spec.get("requestBody", {}).get("content", {})
        self.body_schema: dict[str, Any] | None = content.get("application/json", {}).get("schema")
        security = spec.get("security")
        self.role = security[0]["HTTPBearer"][0] if security else None

    def __repr__(self) -> str:
        return f"{self.method} {self.path}"


OPERATIONS = [
    Operation(method, path, spec)
    for path, methods in DOCUMENT["paths"].items()
    for method, spec in methods.items()
]


class Prober:
    def __init__(
        self, api: httpx.AsyncClient, op: Operation, unit: CareUnit, headers: dict[str, str]
    ) -> None:
        self.api, self.op, self.sample, self.headers = api, op, Sample(unit), headers

    def base(self) -> tuple[dict[str, str], dict[str, str], Any]:
        path = {
            p["name"]: self.sample.text(p["schema"], p["name"]) for p in self.op.params if p["in"] == "path"
        }
        query = {
            p["name"]: self.sample.text(p["schema"], p["name"])
            for p in self.op.params
            if p["in"] == "query" and p.get("required")
        }
        body = self.sample.value(self.op.body_schema) if self.op.body_schema is not None else None
        return path, query, body

    async def send(
        self, path: dict[str, str], query: dict[str, str], body: Any = None, *, raw: bytes | None = None
    ) -> httpx.Response:
        url = self.op.path
        for name, value in path.items():
            url = url.replace("{" + name + "}", quote(value, safe=""))
        headers = dict(self.headers)
        content: bytes | None = raw
        if content is None and body is not None:
            content = json.dumps(body, ensure_ascii=True).encode()
        if content is not None:
            headers["content-type"] = "application/json"
        response = await self.api.request(self.op.method, url, params=query, content=content, headers=headers)
        assert response.status_code < 500, f"{self.op} {url} {query} {content!r}: {response.text}"
        if response.status_code >= 400 and self.op.path not in ("/readyz",):
            assert response.headers["content-type"] == PROBLEM, response.text
        return response

    async def refused(
        self,
        where: str,
        pointer: str,
        path: dict[str, str],
        query: dict[str, str],
        body: Any = None,
        **kw: Any,
    ) -> httpx.Response:
        response = await self.send(path, query, body, **kw)
        assert response.status_code == 422, (
            f"{self.op} {where}{pointer}: {response.status_code} {response.text}"
        )
        named = {(e["location"], e["pointer"]) for e in response.json()["errors"]}
        assert (where, pointer) in named, f"{self.op}: {named} does not name {where}{pointer}"
        return response


@pytest.fixture
async def prober_for(
    api: httpx.AsyncClient, make_key: KeyMaker, make_unit: Callable[..., Awaitable[CareUnit]], idp: TestIdp
) -> Callable[[Operation], Awaitable[Prober]]:
    async def make(op: Operation) -> Prober:
        unit = await make_unit()
        headers = {}
        if op.role is not None:
            headers = await make_key(op.role, units=[unit.hsa_id] if op.role == "ehr" else None)
        if op.role == "portal":  # the resident of the documented example, logged in
            headers |= idp.headers("19880320-0016")
        return Prober(api, op, unit, headers)

    return make


ProberFor = Callable[[Operation], Awaitable[Prober]]
ids = [repr(op) for op in OPERATIONS]


def test_the_document_has_operations_to_probe() -> None:
    assert len(OPERATIONS) >= 40
    assert sum(op.body_schema is not None for op in OPERATIONS) >= 15


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_a_nul_in_any_field_is_a_422_naming_it(op: Operation, prober_for: ProberFor) -> None:
    probe = await prober_for(op)
    path, query, body = probe.base()
    for param in op.params:
        name = param["name"]
        if param["in"] == "path":
            await probe.refused("path", f"/{name}", {**path, name: NUL}, query, body)
        else:
            await probe.refused("query", f"/{name}", path, {**query, name: NUL}, body)
    if op.body_schema is not None:
        for where, _ in _paths(op.body_schema):
            nul_body = _set(body, where, NUL, probe.sample, op.body_schema)
            await probe.refused("body", _pointer(where), path, query, nul_body)
            surrogate = json.dumps(_set(body, where, "\udead", probe.sample, op.body_schema)).encode()
            await probe.refused("body", _pointer(where), path, query, raw=surrogate)


@pytest.mark.parametrize("op", [op for op in OPERATIONS if any(p["name"] == "cursor" for p in op.params)])
async def test_a_forged_cursor_is_a_422_on_cursor(op: Operation, prober_for: ProberFor) -> None:
    probe = await prober_for(op)
    path, query, body = probe.base()
    for cursor in FORGED_CURSORS:
        await probe.refused("query", "/cursor", path, {**query, "cursor": cursor}, body)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_wrong_types_and_far_days_are_a_422_naming_the_field(
    op: Operation, prober_for: ProberFor
) -> None:
    probe = await prober_for(op)
    path, query, body = probe.base()
    for param in op.params:
        schema, name, where = _resolve(param["schema"]), param["name"], param["in"]
        wrong: list[str] = []
        if schema.get("type") == "integer":
            wrong = WRONG_INTEGERS_IN_TEXT
        elif schema.get("type") == "boolean":
            wrong = ["maybe", "2", ""]
        elif schema.get("format") == "date":
            wrong = FAR_DAYS
        for value in wrong:
            if where == "path" and value == "":
                continue  # another route, or none: not this parameter's value
            if where == "path":
                await probe.refused("path", f"/{name}", {**path, name: value}, query, body)
            else:
                await probe.refused("query", f"/{name}", path, {**query, name: value}, body)
    if op.body_schema is None:
        return
    for field, schema in _paths(op.body_schema):
        values: list[Any] = []
        if schema.get("type") == "integer":
            values = WRONG_INTEGERS_IN_JSON
        elif schema.get("type") == "boolean":
            values = (
                WRONG_BOOLEANS_IN_JSON if field[-1] not in _nullable(op.body_schema, field) else ["true", 1]
            )
        elif schema.get("format") == "date":
            values = FAR_DAYS
        elif schema.get("format") == "date-time":
            values = FAR_TIMES
        for value in values:
            wrong_body = _set(body, field, value, probe.sample, op.body_schema)
            await probe.refused("body", _pointer(field), path, query, wrong_body)


def _nullable(schema: dict[str, Any], field: tuple[str | int, ...]) -> set[str | int]:
    """The last name of ``field`` when its schema allows null (null then means "unchanged")."""
    node = _resolve(schema)
    for part in field[:-1]:
        node = _resolve(node.get("items", {}) if isinstance(part, int) else node["properties"][part])
    raw = node.get("properties", {}).get(field[-1], {})
    return {field[-1]} if any(s.get("type") == "null" for s in raw.get("anyOf", [])) else set()


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_an_error_never_echoes_a_personnummer_or_an_address(
    op: Operation, prober_for: ProberFor
) -> None:
    probe = await prober_for(op)
    path, query, body = probe.base()
    for secret in (PERSONNUMMER, ADDRESS, "191212121212", "Storgatan 12 B, 123 45 Ort"):
        text_query = {
            p["name"]: secret
            for p in op.params
            if p["in"] == "query" and _resolve(p["schema"]).get("type") != "boolean"
        }
        text_path = {**path, **{p["name"]: secret for p in op.params if p["in"] == "path"}}
        secret_body = body
        if op.body_schema is not None:
            for field, schema in _paths(op.body_schema):
                if schema.get("type") == "string" or "enum" in schema or "format" in schema:
                    secret_body = _set(secret_body, field, secret, probe.sample, op.body_schema)
        for attempt in (
            (text_path, query, body),
            (path, {**query, **text_query}, body),
            (path, query, secret_body),
        ):
            response = await probe.send(*attempt)
            if response.status_code >= 400:
                digits = secret.replace("-", "")
                assert secret not in response.text, response.text
                assert digits[-10:] not in response.text, response.text
                assert "Storgatan" not in response.text, response.text
