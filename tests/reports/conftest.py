"""Fixtures for the report tests: a generated region in the database and the CLI pointed at the test
database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from halsosamtal.core.settings import Settings, get_settings
from tests.reports.region import Region, generate, insert_region

SM = async_sessionmaker[AsyncSession]


@pytest.fixture
async def region(sessionmaker: SM) -> Region:
    """A generated region (700 residents, six units), inserted."""
    made = generate()
    await insert_region(sessionmaker, made)
    return made


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI reads its settings from the environment: point them at the test database."""
    monkeypatch.setenv("HALSOSAMTAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HALSOSAMTAL_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def run_cli(app: typer.Typer, *args: str) -> tuple[int, str]:
    """Run a command (it runs its own event loop, so in a thread beside the test's loop)."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    # stdout only on success (stderr names the database used); the error too on failure
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output
