"""``halsosamtal audit``: list (recorded itself), verify (exit 1 on a broken chain), seal, archive."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from halsosamtal.cli.app import app
from halsosamtal.core.settings import Settings, get_settings
from tests.factories import make_resident

SM = async_sessionmaker[AsyncSession]


@pytest.fixture
def cli_env(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("HALSOSAMTAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("HALSOSAMTAL_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("HALSOSAMTAL_AUDIT_ARCHIVE_DIR", str(tmp_path / "audit"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


async def test_the_audit_commands(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: SM, cli_env: None
) -> None:
    resident = await make_resident(sessionmaker, dt.date(1987, 5, 4))
    for _ in range(3):
        await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": resident.personnummer})

    code, out = await cli("audit", "list", "--resident", resident.personnummer, "--json")
    assert code == 0, out
    listed = json.loads(out)
    assert [(e["resident_id"], e["operation"]) for e in listed] == [(resident.id, "lookup_resident")] * 3
    assert resident.personnummer not in out
    async with sessionmaker() as s:
        looked = (await s.execute(text("SELECT role, operation FROM access_events WHERE role = 'cli'"))).all()
    assert [tuple(r) for r in looked] == [("cli", "audit list")]

    code, out = await cli("audit", "seal")
    assert (code, out.strip()) == (0, "4 events sealed")
    code, out = await cli("audit", "verify")
    assert code == 0, out
    assert "4 events checked" in out

    code, out = await cli("audit", "archive", "--before", dt.date.today().isoformat(), "--dry-run")
    assert code == 0, out
    assert "would archive" in out or "no sealed events" in out

    async with sessionmaker() as s, s.begin():
        await s.execute(text("SET LOCAL session_replication_role = replica"))
        await s.execute(text("UPDATE access_events SET purpose = 'tampered' WHERE seq = 2"))
    code, out = await cli("audit", "verify")
    assert code == 1
    assert "broken at position 2" in out
    assert "Traceback" not in out
