"""Fixtures for the report tests: a generated region in the database, the CLI pointed at the test
database, and a headless Chromium."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path

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


@pytest.fixture(scope="session")
def chromium() -> Path:
    """The path of a Chromium binary. ``make test`` installs Debian's when it is missing (as root
    with apt-get); anywhere else the test says what to install rather than skipping."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "the HTML report test needs Chromium on the PATH: run `make browser` (Debian, as root) "
            "or install it (`apt-get install chromium`)",
            pytrace=False,
        )
    return Path(found)
