"""Process resources shared by the API and the worker: engine, sessions, Redis."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.core import infra
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.migrations import ensure_schema_current
from halsosamtal.core.settings import Settings

CONNECT_PATIENCE_S = 5.0
"""How long the API and the worker keep trying a new database connection that is refused."""


def heartbeat_key(queue_name: str) -> str:
    """The Redis key a deployment's worker beats on: the queue's own, so that one deployment's
    worker never makes another's look alive on a shared Redis."""
    return f"{queue_name}:worker:heartbeat"


async def last_heartbeat(redis: Any, queue_name: str) -> float | None:
    """When a worker of this queue last beat (Unix time), or None when no beat is recorded
    (none ever, or the last one expired, or the worker stopped and removed it)."""
    value = await redis.get(heartbeat_key(queue_name))
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: ArqRedis

    async def close(self) -> None:
        try:
            await self.redis.aclose()
        finally:  # a Redis that went away must not keep the database connections open
            await self.engine.dispose()


def redis_settings(url: str) -> RedisSettings:
    return RedisSettings.from_dsn(url)


async def open_resources(
    settings: Settings,
    *,
    application_name: str,
    check_schema: bool = True,
    statement_timeout_ms: int = 0,
    pre_ping: bool = True,
    redis_required: bool = True,
) -> Resources:
    """Connect to Postgres and Redis (found as ``infra`` says) and check the schema is current.

    Without ``redis_required`` (the API, which serves every call without Redis) the Redis client
    connects when first used, so the process starts while Redis is away."""
    endpoints = (
        infra.find(settings, quiet=True)
        if not (settings.database_url and settings.redis_url)
        else infra.Endpoints(settings.database_url, settings.redis_url, "", "")
    )
    engine = create_engine(
        endpoints.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        statement_timeout_ms=statement_timeout_ms,
        application_name=application_name,
        pre_ping=pre_ping,
        # A Postgres restarting for a moment delays a request or a job rather than failing it.
        connect_patience_s=CONNECT_PATIENCE_S,
        # Without pre-ping, old connections are replaced before a server or proxy times them out.
        pool_recycle=-1 if pre_ping else 1800,
    )
    try:
        if check_schema:
            await ensure_schema_current(engine)
        if redis_required:
            redis = await create_pool(
                redis_settings(endpoints.redis_url), default_queue_name=settings.queue_name
            )
        else:
            redis = ArqRedis.from_url(endpoints.redis_url, socket_connect_timeout=2, socket_timeout=2)
            redis.default_queue_name = settings.queue_name
    except BaseException:
        await engine.dispose()
        raise
    return Resources(settings, engine, make_sessionmaker(engine), redis)
