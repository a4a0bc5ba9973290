from __future__ import annotations

import httpx

from tests.conftest import KeyMaker


async def test_healthz_needs_no_key(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_reports_database_and_redis(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "redis": "ok", "rate_limits": "enforced"}


async def test_unknown_route_is_a_problem_document(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    response = await api.get("/v1/nowhere", headers=operator)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "not-found"
    # Without a key the door answers first: which routes exist is not told to strangers.
    assert (await api.get("/v1/nowhere")).json()["code"] == "unauthenticated"
    assert (await api.get("/nowhere")).json()["code"] == "not-found"


async def test_revoked_key_is_refused(
    api: httpx.AsyncClient, make_key: KeyMaker, sessionmaker: object
) -> None:
    from halsosamtal.access.service import revoke_client

    headers = await make_key("operator", name="to-revoke")
    assert (await api.get("/v1/care-units", headers=headers)).status_code == 200
    async with sessionmaker() as s, s.begin():  # type: ignore[operator]
        await revoke_client(s, "to-revoke")
    response = await api.get("/v1/care-units", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "the API key is unknown or revoked"
