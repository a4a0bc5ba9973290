"""The commands run the daily jobs for a chosen day: ``reminders run``, ``messages release``,
``messages deliver|failed|retry`` and ``invitations expire|withdraw``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import typer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from halsosamtal.cli.app import messages_group
from halsosamtal.core.settings import Settings, get_settings
from halsosamtal.invitations.lifecycle_cli import app as invitations_app
from halsosamtal.invitations.lifecycle_cli import reminders_app
from halsosamtal.units.models import CareUnit
from tests.messaging.factories import fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]

root = typer.Typer()
root.add_typer(reminders_app, name="reminders")
root.add_typer(messages_group(), name="messages")
root.add_typer(invitations_app, name="invitations")


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI's settings come from the environment: point them at the test database."""
    monkeypatch.setenv("HALSOSAMTAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HALSOSAMTAL_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("HALSOSAMTAL_LETTERS_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def cli(*args: str) -> tuple[int, str]:
    # The command runs its own event loop, so it runs in a thread beside the test's loop.
    result = await asyncio.to_thread(CliRunner().invoke, root, list(args))
    # stdout only on success (stderr names the database used); the error too on failure
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


# A past programme year: the commands act on today or days gone by, never on a coming day.
YEAR, SEND_ON, VALID_UNTIL = 2025, dt.date(2025, 3, 1), dt.date(2026, 3, 31)


async def test_the_commands_run_the_jobs_for_the_given_day(
    sessionmaker: SM, make_unit: MakeUnit, cli_env: None, tmp_path: Path
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker, YEAR, valid_until=VALID_UNTIL)
    nowhere = await resident(sessionmaker, unit.id, address_line=None)
    gone = await resident(sessionmaker, unit.id, emigrated_on=SEND_ON)
    here = await resident(sessionmaker, unit.id)
    past = {"year": YEAR, "send_on": SEND_ON, "valid_until": VALID_UNTIL}
    _, failed_id = await make_invitation(sessionmaker, nowhere, unit.id, **past)
    gone_invitation, _ = await make_invitation(sessionmaker, gone, unit.id, **past)
    here_invitation, _ = await make_invitation(sessionmaker, here, unit.id, **past)

    code, out = await cli("invitations", "withdraw", "--as-of", "2025-03-01", "--json")
    assert (code, json.loads(out)) == (0, {"closed": 1, "moved": 0, "cancelled": 1}), out
    code, out = await cli("messages", "release", "--as-of", "2025-03-01")
    assert code == 0, out
    assert "1 queued, 1 failed" in out
    code, out = await cli("messages", "deliver")
    assert code == 0, out
    assert "1 sent" in out
    assert f"print file {tmp_path}/letters-" in out

    code, out = await cli("reminders", "run", "--as-of", "2025-03-28")
    assert (code, "0 created" in out) == (0, True), out
    code, out = await cli("reminders", "run", "--as-of", "2025-03-29", "--json")
    assert (code, json.loads(out)["created"]) == (0, 1), out

    code, out = await cli("messages", "failed", "--json")
    assert code == 0, out
    assert [(m["id"], m["last_error"]) for m in json.loads(out)] == [(failed_id, "no_address")]
    code, out = await cli("messages", "retry", str(failed_id))
    assert (code, out.strip()) == (0, f"message {failed_id}: failed (no_address)")
    code, out = await cli("messages", "retry", "999999")
    assert code == 1
    assert "no message 999999" in out
    code, out = await cli("messages", "failed", "--kind", "letter")
    assert code == 2

    code, out = await cli("invitations", "expire", "--as-of", "2026-04-01")
    assert code == 0, out
    assert "2 expired" in out  # the one that went out, and the one that never could
    status = dict(await fetch(sessionmaker, "SELECT id, status FROM invitations"))
    assert (status[gone_invitation], status[here_invitation]) == ("withdrawn", "expired")


async def test_a_coming_day_is_refused_and_a_dry_run_keeps_nothing(
    sessionmaker: SM, make_unit: MakeUnit, cli_env: None
) -> None:
    """`--as-of` a day after today would send today and record the coming day as when it went;
    it is refused (exit 2, one line). A dry run may look at a coming day and changes nothing."""
    from halsosamtal.core.clock import local_today

    unit = await make_unit()
    await make_year(sessionmaker, YEAR, valid_until=VALID_UNTIL)
    person = await resident(sessionmaker, unit.id)
    await make_invitation(sessionmaker, person, unit.id, year=YEAR, send_on=SEND_ON, valid_until=VALID_UNTIL)
    tomorrow = (local_today() + dt.timedelta(days=1)).isoformat()
    before = await fetch(sessionmaker, "SELECT id, status, sent_at FROM messages ORDER BY id")

    for command in (
        ("messages", "release"),
        ("reminders", "run"),
        ("invitations", "expire"),
        ("invitations", "withdraw"),
    ):
        code, out = await cli(*command, "--as-of", tomorrow)
        assert code == 2, (command, out)
        assert f"--as-of {tomorrow} is after today" in out
        assert "Traceback" not in out

    code, out = await cli("messages", "release", "--as-of", "2025-03-01", "--dry-run")
    assert (code, "1 queued" in out) == (0, True), out
    code, out = await cli("invitations", "expire", "--as-of", tomorrow, "--dry-run", "--json")
    assert (code, json.loads(out)["closed"]) == (0, 1), out
    assert await fetch(sessionmaker, "SELECT id, status, sent_at FROM messages ORDER BY id") == before
    statuses = await fetch(sessionmaker, "SELECT status FROM invitations")
    assert [s.status for s in statuses] == ["planned"]
