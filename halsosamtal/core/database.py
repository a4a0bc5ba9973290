"""Engine, sessions and the ORM base shared by every feature.

The transaction belongs to the edge: the API opens one per request (``session_dependency``)
and a job opens one per run (``session_scope``). Services and repositories never commit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from sqlalchemy import DateTime, MetaData, event, func
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    statement_timeout_ms: int = 0,
    application_name: str = "halsosamtal",
    pre_ping: bool = True,
    connect_patience_s: float = 0.0,
    **kwargs: Any,
) -> AsyncEngine:
    """An asyncpg engine; the URL may be plain ``postgresql://`` and is given the driver.

    ``pre_ping`` tests each connection as it leaves the pool (three round trips on asyncpg).
    The API turns it off: a request's first statement meets a dropped connection instead, the
    pool discards it and the request answers 503 (clients retry; every write is idempotent).

    ``connect_patience_s``: a new connection that the server refuses (it is restarting) is tried
    again for up to this long before the error stands, so a restart of a second or two delays
    requests instead of failing them. Nothing has been sent when a connect fails: any request
    may wait for it, a write too.
    """
    server_settings = {"application_name": application_name, "timezone": "UTC"}
    if statement_timeout_ms:
        server_settings["statement_timeout"] = str(statement_timeout_ms)
    engine = create_async_engine(
        async_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=pre_ping,
        # Errors and logs never carry a statement's values: they are personal data.
        hide_parameters=True,
        **(
            {"async_creator": _patient_connect(url, server_settings, connect_patience_s)}
            if connect_patience_s > 0
            else {"connect_args": {"server_settings": server_settings}}
        ),
        **kwargs,
    )
    event.listen(engine.sync_engine, "handle_error", _broken_connections_are_disconnects)
    return engine


def _patient_connect(
    url: str, server_settings: dict[str, str], patience_s: float
) -> Callable[[], Awaitable[asyncpg.Connection]]:
    dsn = "postgresql://" + async_url(url).removeprefix("postgresql+asyncpg://")

    async def connect() -> asyncpg.Connection:
        deadline = time.monotonic() + patience_s
        delay = 0.1
        while True:
            try:
                return await asyncpg.connect(dsn, server_settings=server_settings)
            except (OSError, asyncpg.CannotConnectNowError):
                if time.monotonic() + delay > deadline:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    return connect


def _broken_connections_are_disconnects(context: ExceptionContext) -> None:
    """Every connection-class error counts as a disconnect, so SQLAlchemy discards the
    connection and every other connection the pool made before it (a Postgres restart drops
    them all). The asyncpg dialect alone recognises only a connection already marked closed: one
    left "cannot switch to state" by an interrupted statement went back into the pool and failed
    the next request too."""
    if not context.is_disconnect and is_connection_error(context.original_exception):
        context.is_disconnect = True


def async_url(url: str) -> str:
    """Give a ``postgresql://`` URL the asyncpg driver SQLAlchemy needs."""
    for prefix in (
        "postgresql+asyncpg://",
        "postgresql+psycopg://",
        "postgresql://",
        "postgres://",
    ):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {url.split('@')[-1]!r}")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit when the block succeeds, roll back when it raises."""
    async with sessionmaker() as session, session.begin():
        yield session


async def raw_connection(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a SQLAlchemy connection, inside the same transaction (COPY)."""
    fairy = await conn.get_raw_connection()
    driver = fairy.driver_connection
    assert isinstance(driver, asyncpg.Connection)
    return driver


CONNECTION_ERROR_NAMES = frozenset(
    {
        "ConnectionDoesNotExistError",  # asyncpg: the connection was closed under the statement
        "InterfaceError",  # asyncpg: "cannot switch to state ..." on a connection left half-used
        "InternalClientError",
        "CannotConnectNowError",  # the server is starting up or shutting down
        "ConnectionFailureError",
        "TooManyConnectionsError",
    }
)


def is_connection_error(exc: BaseException | None, _depth: int = 0) -> bool:
    """The database (or the way to it) is gone: refused, reset, shutting down, or the driver's
    connection is in a state it cannot use. Follows causes and exception groups."""
    if exc is None or _depth > 8:
        return False
    if isinstance(exc, OSError | ConnectionError | TimeoutError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or is_connection_error(exc.orig, _depth + 1)
    ):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(is_connection_error(e, _depth + 1) for e in exc.exceptions)
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and (sqlstate.startswith("08") or sqlstate in {"57P01", "57P02", "57P03"}):
        return True  # connection exceptions; admin/crash shutdown; cannot connect now
    if type(exc).__name__ in CONNECTION_ERROR_NAMES:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_connection_error(cause, _depth + 1)


def database_unavailable(exc: BaseException) -> bool:
    """The request or job failed because the database could not be reached or its connection
    broke (so nothing of it was kept, or a commit's outcome is unknown): worth trying again."""
    return is_connection_error(exc)
