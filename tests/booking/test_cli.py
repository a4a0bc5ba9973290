"""``halsosamtal slots template`` publishes times for one unit or every participating one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from halsosamtal.booking.cli import app
from halsosamtal.core.settings import Settings, get_settings
from tests.booking.support import MakeUnit
from tests.messaging.factories import fetch

SM = async_sessionmaker[AsyncSession]

root = typer.Typer()
root.add_typer(app, name="slots")


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HALSOSAMTAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HALSOSAMTAL_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, root, ["slots", *args])
    # stdout only on success (stderr names the database used); the error too on failure
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


WEEK = ("--first-day", "2027-05-03", "--last-day", "2027-05-09")


async def test_a_template_for_every_participating_unit(
    sessionmaker: SM, make_unit: MakeUnit, cli_env: None
) -> None:
    one, two = await make_unit(), await make_unit()
    await make_unit(participating=False)
    code, output = await cli("template", "--all-participating", *WEEK, "--json")
    assert code == 0, output
    published = json.loads(output)
    assert set(published) == {one.hsa_id, two.hsa_id}
    assert published[one.hsa_id]["created"] == 5  # Tue 4 May; Thu 6 May is Ascension Day
    assert published[one.hsa_id]["skipped_days"] == [
        {"date": "2027-05-06", "reason": "Kristi himmelsfärdsdag"}
    ]
    rows = await fetch(sessionmaker, "SELECT care_unit_id, count(*) AS n FROM slots GROUP BY 1 ORDER BY 1")
    assert [(r.care_unit_id, r.n) for r in rows] == [(one.id, 5), (two.id, 5)]

    code, output = await cli("template", "--unit", one.hsa_id, *WEEK)
    assert code == 0, output
    assert "Kristi himmelsfärdsdag" in output
    assert (await fetch(sessionmaker, "SELECT count(*) AS n FROM slots"))[0].n == 10


async def test_bad_options_are_named(make_unit: MakeUnit, cli_env: None) -> None:
    unit = await make_unit()
    code, output = await cli("template", *WEEK)
    assert code == 1
    assert "--unit" in output
    code, output = await cli("template", "--unit", unit.hsa_id, *WEEK, "--weekdays", "tue,funday")
    assert code == 1
    assert "--weekdays" in output
    code, output = await cli("template", "--unit", "SE2321000131-E999999999999", *WEEK)
    assert code == 1
    assert "no care unit" in output
