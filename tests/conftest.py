"""Test harness: real Postgres and Redis, found the same way the service finds them.

One throw-away database per test run, built by Alembic; every test starts from empty tables
(truncated after each test) so commits, locks and concurrency behave as in production.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from arq.connections import create_pool
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.access.schemas import ClientCreate
from halsosamtal.cli.clients import create_client
from halsosamtal.core import infra, migrations
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.runtime import Resources, redis_settings
from halsosamtal.core.settings import Settings
from halsosamtal.units.models import CareUnit
from services.api.app import create_app
from tests import tokens
from tests.browser import find_chromium
from tests.tokens import TestIdp, sign_portal_calls

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def endpoints() -> infra.Endpoints:
    base = Settings(
        database_url=os.environ.get("DATABASE_URL", ""),
        redis_url=os.environ.get("REDIS_URL", ""),
    )
    found = infra.find(base, database=f"halsosamtal_test_{RUN_ID}")
    if base.database_url:  # an explicit server: still use a throw-away database on it
        found = infra.Endpoints(
            infra.with_database(base.database_url, f"halsosamtal_test_{RUN_ID}"),
            found.redis_url,
            found.database_source,
            found.redis_source,
        )
    return found


@pytest.fixture(scope="session")
async def database_url(endpoints: infra.Endpoints) -> AsyncIterator[str]:
    url = endpoints.database_url
    await infra.ensure_database(url)
    try:
        await asyncio.to_thread(migrations.upgrade, url)
        yield url
    finally:
        await infra.drop_database(url)


@pytest.fixture(scope="session")
def idp(tmp_path_factory: pytest.TempPathFactory) -> TestIdp:
    """The tests' identity provider: its keys, its JWKS file, resident tokens (tests/tokens.py)."""
    return TestIdp(tmp_path_factory.mktemp("idp"))


@pytest.fixture(scope="session")
def settings(database_url: str, endpoints: infra.Endpoints, idp: TestIdp) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=endpoints.redis_url,
        queue_name=f"halsosamtal:test:{RUN_ID}",
        db_pool_size=5,
        db_max_overflow=20,
        resident_token_jwks_file=idp.jwks_file,
        resident_token_issuer=tokens.ISSUER,
        resident_token_audience=tokens.AUDIENCE,
        # Every test speaks from one address with many clients: the limits get tests of their own
        # (tests/access/test_doors.py).
        rate_limit_failed_auth="100000/minute",
        rate_limit_operator="100000/minute",
        rate_limit_portal="100000/minute",
        rate_limit_ehr="100000/minute",
    )


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    eng = create_engine(
        settings.database_url, pool_size=5, max_overflow=20, application_name="halsosamtal-tests"
    )
    yield eng
    await eng.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessionmaker(engine)


@pytest.fixture(scope="session")
async def resources(
    settings: Settings, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Resources]:
    redis = await create_pool(redis_settings(settings.redis_url), default_queue_name=settings.queue_name)
    yield Resources(settings, engine, sessionmaker, redis)
    keys = [k async for k in redis.scan_iter(f"*{RUN_ID}*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


_TABLES: list[str] = []


@pytest.fixture(autouse=True)
async def _clean_tables(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty every table after each test that used the database."""
    yield
    if "database_url" not in request.fixturenames:
        return
    engine: AsyncEngine = request.getfixturevalue("engine")
    async with engine.begin() as conn:
        # The access log refuses TRUNCATE (append-only, by trigger); a test database is the one
        # place it is emptied, with triggers off for this transaction.
        await conn.execute(text("SET LOCAL session_replication_role = replica"))
        if not _TABLES:
            rows = await conn.execute(
                text(
                    "SELECT quote_ident(tablename) FROM pg_tables "
                    "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
                )
            )
            _TABLES.extend(r[0] for r in rows)
        await conn.execute(text(f"TRUNCATE {', '.join(_TABLES)} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def session(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A session whose transaction the test commits itself (as the edge would)."""
    async with sessionmaker() as s:
        yield s


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Headless Chromium for the tests that render pages (see ``tests.browser``)."""
    return find_chromium()


@pytest.fixture(scope="session")
async def app(settings: Settings, resources: Resources) -> AsyncIterator[Any]:
    application = create_app(settings, resources)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def api(app: Any, idp: TestIdp) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the app, with no credentials; a portal call naming a resident in its
    body carries that resident's token, as a portal forwards the logged-in resident's login
    (``tests.tokens.sign_portal_calls``; a call that sends its own token keeps it)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://testserver",
        event_hooks={"request": [sign_portal_calls(idp)]},
    ) as client:
        yield client


KeyMaker = Callable[..., Awaitable[dict[str, str]]]


@pytest.fixture
def make_key(sessionmaker: async_sessionmaker[AsyncSession]) -> KeyMaker:
    """``await make_key("ehr", units=["SE...-E1"])`` -> Authorization headers for a new client."""

    async def make(role: str, *, units: list[str] | None = None, name: str | None = None) -> dict[str, str]:
        async with sessionmaker() as s, s.begin():
            created = await create_client(
                s,
                ClientCreate(
                    name=name or f"{role}-{uuid.uuid4().hex[:8]}",
                    role=role,  # type: ignore[arg-type]
                    care_units=units or [],
                ),
            )
        return {"Authorization": f"Bearer {created.key}"}

    return make


@pytest.fixture
async def operator(make_key: KeyMaker) -> dict[str, str]:
    return await make_key("operator")


@pytest.fixture
def make_unit(sessionmaker: async_sessionmaker[AsyncSession]) -> Callable[..., Awaitable[CareUnit]]:
    counter = iter(range(1, 10_000))

    async def make(**fields: Any) -> CareUnit:
        n = next(counter)
        values: dict[str, Any] = {
            "hsa_id": f"SE2321000131-E{n:012d}",
            "name": f"Vårdcentralen {n}",
            "municipality": "1380",
            "operator": "public",
            "participating": True,
            "weekly_capacity": 20,
        }
        values.update(fields)
        async with sessionmaker() as s, s.begin():
            unit = CareUnit(**values)
            s.add(unit)
        return unit

    return make


async def run_worker_burst(settings: Settings, **overrides: Any) -> Any:
    """Run the real worker (``WorkerSettings``' functions and start-up) until its queue is
    empty, as arq's own tests do; returns the worker for its counters."""
    from arq.worker import Worker

    from services.worker import settings as worker_settings

    options: dict[str, Any] = {
        "functions": worker_settings.WorkerSettings.functions,
        "on_startup": worker_settings.startup,
        "on_shutdown": worker_settings.shutdown,
        "redis_settings": redis_settings(settings.redis_url),
        "queue_name": settings.queue_name,
        "burst": True,
        "poll_delay": 0.05,
        "handle_signals": False,
    }
    options.update(overrides)
    worker = Worker(**options)
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker
