"""A batch process killed with SIGKILL in the middle of a run leaves nobody half-invited, and
the next run completes it: exactly one invitation (with its message) per eligible resident."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sys

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.settings import Settings
from halsosamtal.programmes.schemas import ProgrammeRules
from halsosamtal.programmes.service import set_year


async def _build(sm: async_sessionmaker[AsyncSession], residents: int) -> int:
    async with sm() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO care_units"
                " (hsa_id, name, municipality, operator, participating, weekly_capacity) "
                "SELECT 'SE2321000115-E' || lpad(i::text, 12, '0'), 'VC ' || i, '1380', 'public', true, 30 "
                "FROM generate_series(1, 120) i"
            )
        )
        await s.execute(
            text(
                "INSERT INTO residents (personnummer, birth_date, sex, care_unit_id) "
                "SELECT to_char(b, 'YYYYMMDD') || lpad((i / 10950)::text, 3, '0') || '0', b, 'F', "
                "(SELECT min(id) FROM care_units) + i % 120 "
                "FROM generate_series(0, :n - 1) i, LATERAL (SELECT DATE '1960-01-01' + (i % 10950)) d(b)"
            ),
            {"n": residents},
        )
        await set_year(
            s,
            2027,
            ProgrammeRules(target_ages=[40, 50, 60], talk_rate=1000, valid_until=dt.date(2028, 3, 31)),
            actor="test",
        )
        eligible = await s.scalar(
            text("SELECT count(*) FROM residents WHERE extract(year FROM birth_date) IN (1987, 1977, 1967)")
        )
    return int(eligible or 0)


@pytest.mark.slow
async def test_sigkill_mid_run_then_rerun_invites_everyone_exactly_once(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    eligible = await _build(sessionmaker, 60_000)
    env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url}
    command = [
        sys.executable,
        "-m",
        "halsosamtal.cli",
        "batch",
        "run",
        "--year",
        "2027",
        "--as-of",
        "2026-12-01",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    killed_at = None
    for _ in range(3000):  # bounded: at most about 30 s
        await asyncio.sleep(0.01)
        async with sessionmaker() as s:
            done = await s.scalar(text("SELECT count(*) FROM invitations"))
        if done:
            process.send_signal(signal.SIGKILL)
            killed_at = done
            break
        if process.returncode is not None:
            break
    output, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    assert killed_at is not None, f"the run ended before it could be killed: {output.decode()}"
    assert process.returncode == -signal.SIGKILL
    async with sessionmaker() as s:
        partial = await s.scalar(text("SELECT count(*) FROM invitations"))
    assert 0 < partial < eligible

    rerun = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await asyncio.wait_for(rerun.communicate(), timeout=120)
    assert rerun.returncode == 0, output.decode()
    async with sessionmaker() as s:
        row = (
            await s.execute(
                text(
                    "SELECT count(*), count(DISTINCT resident_id), "
                    "(SELECT count(*) FROM messages WHERE kind = 'invitation'), "
                    "(SELECT count(*) FROM invitation_events) FROM invitations"
                )
            )
        ).one()
    assert tuple(row) == (eligible, eligible, eligible, eligible)
