"""The API answers 503 (not 500) when its database connection was dropped, and recovers at once.

The API's pool does not ping connections before use (three round trips per request on
asyncpg); this is what makes that safe: a read that meets a dropped connection is tried once
more on a fresh one, a write is answered 503 with Retry-After, and the pool discards every
connection from before the drop.
"""

from __future__ import annotations

import datetime as dt

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from halsosamtal.core.settings import Settings
from services.api.app import create_app
from tests.conftest import KeyMaker
from tests.factories import personnummer


async def test_a_dropped_connection_is_a_retried_read_or_a_503_write_and_the_next_request_works(
    settings: Settings, engine: AsyncEngine, make_key: KeyMaker
) -> None:
    headers = await make_key("operator")
    name = "halsosamtal-api"  # the application_name the API's own pool connects with
    app = create_app(settings)  # its own resources: a pool without pre-ping, as in production
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
        ) as client,
    ):
        assert (await client.get("/v1/care-units", headers=headers)).status_code == 200

        async def drop_connections() -> None:
            async with engine.begin() as conn:
                killed = await conn.scalar(
                    text(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = :name AND datname = current_database()"
                    ),
                    {"name": name},
                )
            assert killed >= 1

        await drop_connections()
        # A read is tried again on a new connection: the client never sees the drop.
        assert (await client.get("/v1/care-units", headers=headers)).status_code == 200

        await drop_connections()
        lookup = {"personnummer": personnummer(dt.date(1987, 5, 1))}
        dropped = await client.post("/v1/residents/lookup", headers=headers, json=lookup)
        assert dropped.status_code == 503, dropped.text
        assert dropped.json()["code"] == "database-unavailable"
        assert dropped.headers["retry-after"] == "1"
        assert (await client.post("/v1/residents/lookup", headers=headers, json=lookup)).status_code == 404
        assert (await client.get("/v1/care-units", headers=headers)).status_code == 200
