"""The doors: authentication before the body, rate limits per client and on failed
authentication, the body's size, and limits that fail open when Redis does not answer."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.access import service
from halsosamtal.access.doors import Limiter
from halsosamtal.core.runtime import Resources
from halsosamtal.core.settings import Settings
from services.api.app import create_app
from tests.conftest import KeyMaker

SM = async_sessionmaker[AsyncSession]


def _strict(settings: Settings, **more: Any) -> Settings:
    # A database name of its own for the counters' keys: each test starts from zero.
    return settings.model_copy(
        update={
            "rate_limit_failed_auth": "5/minute",
            "rate_limit_operator": "3/minute",
            "max_body_bytes": 2048,
            "max_import_bytes": 8192,
            **more,
        }
    )


@pytest.fixture
async def strict(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_strict(settings), resources)
    async with app.router.lifespan_context(app):
        # Counters of their own for this test: the tables' ids start from 1 again in every test.
        prefix = f"halsosamtal:{settings.database}:limits:{uuid.uuid4().hex}"
        app.state.limiter = Limiter(app.state.settings, settings.redis_url, prefix=prefix)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            yield client


async def test_a_malformed_body_without_a_key_is_401_not_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/residents/lookup", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["code"]) == (401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_burst_of_bad_keys_is_throttled_and_a_good_key_still_passes(
    strict: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    bad = {"Authorization": "Bearer hs_guess"}
    answers = [(await strict.get("/v1/care-units", headers=bad)).status_code for _ in range(8)]
    assert answers == [401] * 5 + [429] * 3
    throttled = await strict.get("/v1/care-units")
    assert throttled.json()["code"] == "too-many-failed-authentications"
    assert 1 <= int(throttled.headers["retry-after"]) <= 60
    assert throttled.headers["ratelimit-limit"] == "5"
    assert throttled.headers["ratelimit-remaining"] == "0"
    assert throttled.headers["content-type"] == "application/problem+json"
    good = await strict.get("/v1/care-units", headers=await make_key("operator"))
    assert good.status_code == 200


async def test_each_client_has_its_roles_rate(strict: httpx.AsyncClient, make_key: KeyMaker) -> None:
    one, two = await make_key("operator"), await make_key("operator")
    first = await strict.get("/v1/care-units", headers=one)
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("3", "2")
    assert first.headers["ratelimit-policy"] == "3;w=60"
    assert 1 <= int(first.headers["ratelimit-reset"]) <= 60
    assert [(await strict.get("/v1/care-units", headers=one)).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]
    over = await strict.get("/v1/care-units", headers=one)
    assert (over.status_code, over.json()["code"]) == (429, "rate-limited")
    assert int(over.headers["retry-after"]) >= 1
    assert (await strict.get("/v1/care-units", headers=two)).status_code == 200


async def test_a_body_over_the_limit_is_413_before_it_is_read(
    strict: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    operator = await make_key("operator", name=f"big-{uuid.uuid4().hex[:6]}")
    headers = {**operator, "Content-Type": "application/json"}
    big = b'{"personnummer": "' + b"1" * 4000 + b'"}'
    said = await strict.post("/v1/residents/lookup", content=big, headers=headers)
    assert (said.status_code, said.json()["code"]) == (413, "body-too-large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(10):
            yield b" " * 1000

    streamed = await strict.post("/v1/residents/lookup", content=chunks(), headers=headers)
    assert (streamed.status_code, streamed.json()["code"]) == (413, "body-too-large")
    # Without a key, the size is never looked at: 401 first.
    anonymous = await strict.post(
        "/v1/residents/lookup", content=big, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 401


async def test_an_import_has_its_own_larger_limit(strict: httpx.AsyncClient, make_key: KeyMaker) -> None:
    operator = await make_key("operator", name=f"imp-{uuid.uuid4().hex[:6]}")
    header = "hsa_id,name,municipality,operator,participating,weekly_capacity\n"
    rows = "".join(f"SE2321000131-E{n:012d},Vårdcentralen {n},1380,public,true,20\n" for n in range(60))
    assert 2048 < len((header + rows).encode()) < 8192
    fits = await strict.post(
        "/v1/care-units/import",
        content=(header + rows).encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert fits.status_code == 200, fits.text
    too_big = await strict.post(
        "/v1/care-units/import",
        content=(header + rows * 3).encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert (too_big.status_code, too_big.json()["code"]) == (413, "body-too-large")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_limits_fail_open_when_redis_does_not_answer(
    settings: Settings, resources: Resources, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    dead = _strict(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    app = create_app(dead, resources)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        operator = await make_key("operator")
        with caplog.at_level(logging.WARNING, logger="halsosamtal.access.doors"):
            answers = [(await client.get("/v1/care-units", headers=operator)).status_code for _ in range(6)]
        assert answers == [200] * 6  # over the rate of 3, but nothing counts them
        assert "ratelimit-limit" not in (await client.get("/v1/care-units", headers=operator)).headers
        assert sum("fail open" in r.getMessage() for r in caplog.records) == 1  # said once, not per request
        ready = (await client.get("/readyz")).json()
        assert ready["rate_limits"] == "fail-open", ready


async def test_a_rotated_key_keeps_the_old_one_for_the_overlap_only(
    api: httpx.AsyncClient, sessionmaker: SM, make_key: KeyMaker
) -> None:
    old = await make_key("operator", name="rotating")
    async with sessionmaker() as s, s.begin():
        first = await service.rotate_key(s, "rotating", overlap=timedelta(hours=1))
    new = {"Authorization": f"Bearer {first.key}"}
    assert (await api.get("/v1/care-units", headers=old)).status_code == 200
    assert (await api.get("/v1/care-units", headers=new)).status_code == 200
    async with sessionmaker() as s, s.begin():
        second = await service.rotate_key(s, "rotating", overlap=timedelta(0))
    # The second rotation ends the first key at once, and with no overlap the second key too.
    assert (await api.get("/v1/care-units", headers=old)).status_code == 401
    assert (await api.get("/v1/care-units", headers=new)).status_code == 401
    assert (
        await api.get("/v1/care-units", headers={"Authorization": f"Bearer {second.key}"})
    ).status_code == 200
