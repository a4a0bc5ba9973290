from __future__ import annotations

import socket

import httpx

from halsosamtal.core.settings import Settings
from services.api.app import create_app
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


async def test_without_redis_the_api_starts_is_ready_and_serves(
    settings: Settings, make_key: KeyMaker
) -> None:
    with socket.socket() as s:  # a port nothing listens on: Redis is away
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{port}/0"}))
    headers = await make_key("operator", name="no-redis")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {
            "status": "ready",
            "database": "ok",
            "redis": "unavailable",
            "rate_limits": "fail-open",
        }
        assert (await client.get("/v1/care-units", headers=headers)).status_code == 200
