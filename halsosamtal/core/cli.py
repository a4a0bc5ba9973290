"""Plumbing for CLI commands: which servers, one event loop and one transaction per command,
dry runs, and the command groups that several features add commands to.

Printing is in :mod:`halsosamtal.core.console`; the command line is assembled in
``halsosamtal/cli/app.py`` (which also registers every model before a command runs)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.core import clock, infra
from halsosamtal.core.console import err_console, fail
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.errors import DomainError, SchemaOutOfDate
from halsosamtal.core.migrations import ensure_schema_current
from halsosamtal.core.settings import get_settings

T = TypeVar("T")


import_app = typer.Typer(help="Load registers from CSV files.", no_args_is_help=True)
"""``halsosamtal import``: each register's command lives with its feature."""

_found: dict[int, infra.Endpoints] = {}


def endpoints() -> infra.Endpoints:
    """The Postgres and Redis this command uses, found once per settings (as the API and the
    worker find them) and named on one line on stderr."""
    settings = get_settings()
    found = _found.get(id(settings))
    if found is None:
        try:
            found = _found[id(settings)] = infra.find(settings)
        except RuntimeError as exc:
            fail(str(exc))
        err_console.print(f"halsosamtal: {infra.describe(found)}", highlight=False, soft_wrap=True)
    return found


def database_url() -> str:
    """The database the CLI works on (not created: only ``halsosamtal migrate`` creates it)."""
    return endpoints().database_url


def create_database(url: str) -> bool:
    """Create the URL's database when missing (``migrate``, ``dev run``); one line on failure."""
    try:
        return asyncio.run(infra.ensure_database(url))
    except (OSError, asyncpg.PostgresError) as exc:
        fail(f"cannot reach Postgres at {safe_url(url)}: {exc}")


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]], *, dry_run: bool = False) -> T:
    """Run ``work`` in one transaction on a migrated database; print domain errors and exit 1.
    With ``dry_run`` the transaction is rolled back: the command shows what it would do."""

    url = database_url()

    async def go() -> T:
        engine = create_engine(url, pool_size=2, max_overflow=0, application_name="halsosamtal-cli")
        try:
            await check_database(engine, url)
            async with make_sessionmaker(engine)() as session:
                await session.begin()
                try:
                    result = await work(session)
                except BaseException:
                    await session.rollback()
                    raise
                await (session.rollback() if dry_run else session.commit())
                return result
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(go())
    except DomainError as exc:
        fail(exc.detail)
    except SchemaOutOfDate as exc:
        fail(str(exc))
    if dry_run:
        said_dry_run()
    return result


def said_dry_run() -> None:
    err_console.print("dry run: nothing was changed or sent", highlight=False)


DryRun = Annotated[
    bool,
    typer.Option(
        "--dry-run",
        help="Do everything but keep nothing: print what the command would do, then roll it back.",
    ),
]


def not_after_today(day: date, option: str = "--as-of", *, dry_run: bool = False) -> date:
    """Refuse a day after today in Sweden (exit 2, one line): a command that sends or changes
    state acts now, and would record a future day as the day it acted. A dry run may look at a
    coming day: it keeps nothing."""
    today = clock.local_today()
    if day > today and not dry_run:
        fail(
            f"{option} {day.isoformat()} is after today ({today.isoformat()} in Sweden): a command "
            "that sends or changes something acts today; add --dry-run to see what it would do then",
            code=2,
        )
    return day


class Unreachable(DomainError):
    code = "database-unreachable"


async def check_database(engine: AsyncEngine, url: str) -> None:
    """Connect and check the schema; a failure to connect is one clear line, not a traceback."""
    try:
        async with engine.connect():
            pass
    except (OSError, DBAPIError, asyncpg.PostgresError) as exc:
        reason = getattr(exc, "orig", None) or exc
        if getattr(reason, "sqlstate", None) == "3D000":  # invalid_catalog_name
            raise Unreachable(
                f"the database {urlsplit(url).path.lstrip('/')!r} does not exist at {safe_url(url)}: "
                "run `halsosamtal migrate` first"
            ) from exc
        raise Unreachable(f"cannot reach Postgres at {safe_url(url)}: {reason}") from exc
    await ensure_schema_current(engine)


@asynccontextmanager
async def with_sessionmaker(*, dry_run: bool = False) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on a migrated database, for commands that commit in several steps.

    With ``dry_run`` every session runs on one connection inside one transaction that is rolled
    back at the end (each session's commit only releases a savepoint), so the work runs as it
    would (one session at a time) and nothing is kept."""
    url = database_url()
    engine = create_engine(url, pool_size=3, max_overflow=2, application_name="halsosamtal-cli")
    try:
        await check_database(engine, url)
        if not dry_run:
            yield make_sessionmaker(engine)
            return
        async with engine.connect() as conn:
            outer = await conn.begin()
            try:
                yield async_sessionmaker(
                    bind=conn,
                    expire_on_commit=False,
                    autoflush=False,
                    join_transaction_mode="create_savepoint",
                )
            finally:
                await outer.rollback()
    finally:
        await engine.dispose()


def run_chunked(
    work: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]], *, dry_run: bool = False
) -> T:
    """Run ``work``, which commits chunk by chunk, on the CLI's database; a domain error is
    printed and exits 1. With ``dry_run`` nothing it does is kept."""

    async def go() -> T:
        async with with_sessionmaker(dry_run=dry_run) as sessionmaker:
            return await work(sessionmaker)

    try:
        result = asyncio.run(go())
    except DomainError as exc:
        fail(exc.detail)
    if dry_run:
        said_dry_run()
    return result


def day_of(as_of: datetime | None, *, dry_run: bool = False) -> date:
    """The ``--as-of`` day (default today in Sweden); a day after today is refused unless the
    run is a dry run."""
    return not_after_today(as_of.date(), dry_run=dry_run) if as_of else clock.local_today()
