"""Plumbing for CLI commands: one event loop and one transaction per command, and output."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import infra
from halsosamtal.core.database import create_engine, make_sessionmaker
from halsosamtal.core.errors import DomainError, SchemaOutOfDate
from halsosamtal.core.migrations import ensure_schema_current
from halsosamtal.core.settings import get_settings

T = TypeVar("T")

console = Console()
err_console = Console(stderr=True)


def database_url() -> str:
    """The database the CLI works on (created when a local server does not have it yet)."""
    settings = get_settings()
    url = settings.database_url or infra.find(settings).database_url
    if not settings.database_url:
        asyncio.run(infra.ensure_database(url))
    return url


def run_in_transaction(work: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``work`` in one transaction on a migrated database; print domain errors and exit 1."""

    url = database_url()

    async def go() -> T:
        engine = create_engine(url, pool_size=2, max_overflow=0, application_name="halsosamtal-cli")
        try:
            await ensure_schema_current(engine)
            async with make_sessionmaker(engine)() as session, session.begin():
                return await work(session)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(go())
    except DomainError as exc:
        fail(exc.detail)
    except SchemaOutOfDate as exc:
        fail(str(exc))


@asynccontextmanager
async def with_sessionmaker() -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A sessionmaker on a migrated database, for commands that commit in several steps."""
    engine = create_engine(database_url(), pool_size=3, max_overflow=2, application_name="halsosamtal-cli")
    try:
        await ensure_schema_current(engine)
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def progress() -> Progress:
    """A progress bar on stderr (hidden when stderr is not a terminal)."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
