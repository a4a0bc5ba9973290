"""Every route but the health probes needs a key (401) and the right role (403).

The routes are read from the app, so a route added later is checked without editing this file.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from halsosamtal.units.models import CareUnit
from services.api.app import create_app
from tests.conftest import KeyMaker
from tests.tokens import TestIdp

PUBLIC = {"/healthz", "/readyz"}
ROLES = ("operator", "portal", "ehr")


def _routes() -> list[tuple[str, str, frozenset[str]]]:
    """(method, path, roles) of every operation, roles read from its OpenAPI security requirement."""
    routes = []
    for path, operations in create_app().openapi()["paths"].items():
        if path in PUBLIC:
            continue
        for method, operation in operations.items():
            security = operation.get("security")
            assert security, f"{method} {path} declares no role: every route must use require(...)"
            roles = frozenset(security[0]["HTTPBearer"])
            assert roles <= set(ROLES), roles
            routes.append((method.upper(), path, roles))
    return routes


ROUTES = _routes()


def test_the_app_has_routes_to_check() -> None:
    assert len(ROUTES) >= 10


def _fill(path: str, unit: CareUnit) -> str:
    values = {"hsa_id": unit.hsa_id, "year": "2027"}
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), "1"), path)


@pytest.mark.parametrize(("method", "path", "roles"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_route_needs_a_key_and_the_right_role(
    api: httpx.AsyncClient,
    make_key: KeyMaker,
    idp: TestIdp,
    make_unit: Callable[..., Awaitable[CareUnit]],
    method: str,
    path: str,
    roles: frozenset[str],
) -> None:
    unit, other = await make_unit(), await make_unit()
    url = _fill(path, unit)

    missing = await api.request(method, url)
    assert missing.status_code == 401, missing.text
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"

    bad = await api.request(method, url, headers={"Authorization": "Bearer hs_not-a-real-key"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "unauthenticated"

    for role in ROLES:
        units = [other.hsa_id] if role == "ehr" else None
        headers = await make_key(role, units=units)
        if role == "portal":  # and the logged-in resident's token, as a portal sends it
            headers |= idp.headers("19870504-0015")
        response: Any = await api.request(method, url, headers=headers)
        if role not in roles:
            assert response.status_code == 403, f"{role}: {response.text}"
            assert response.json()["code"] == "forbidden"
        elif role == "ehr" and "{hsa_id}" in path:
            # An EHR client bound to another unit may not act for this one.
            assert response.status_code == 403, response.text
        else:
            assert response.status_code not in (401, 403), f"{role}: {response.text}"
