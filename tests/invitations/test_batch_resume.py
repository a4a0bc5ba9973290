"""A batch whose run stopped (worker killed, database gone, Redis emptied) is found in Postgres by
its lease and taken over by a new generation, which finishes it exactly once; a batch that
cannot be resumed ends failed with its reason."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.database import session_scope
from halsosamtal.invitations import batch
from halsosamtal.invitations.jobs import batch_job_id
from halsosamtal.units.models import CareUnit
from tests.invitations.test_batch import AS_OF, _invited, _new_batch, _region


async def _row(sm: async_sessionmaker[AsyncSession], batch_id: int) -> dict[str, object]:
    async with sm() as s:
        row = (
            await s.execute(
                text(
                    "SELECT state, total, done, created, resumes, errors, lease_until > now() AS leased "
                    "FROM batch_runs WHERE id = :id"
                ),
                {"id": batch_id},
            )
        ).one()
    return dict(row._mapping)


async def _pick_up(sm: async_sessionmaker[AsyncSession]) -> list[batch.Pickup]:
    async with session_scope(sm) as s:
        return await batch.pick_up(s)


async def _expire_lease(sm: async_sessionmaker[AsyncSession], batch_id: int) -> None:
    async with session_scope(sm) as s:
        await s.execute(
            text("UPDATE batch_runs SET lease_until = now() - interval '1 second' WHERE id = :id"),
            {"id": batch_id},
        )


async def test_a_run_cut_off_from_the_database_is_resumed_by_a_new_generation_exactly_once(
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(batch, "UNITS_AT_ONCE", 1)
    _, expected = await _region(sessionmaker, make_unit)
    batch_id = await _new_batch(sessionmaker)
    (first,) = await _pick_up(sessionmaker)
    assert (first.batch_id, first.generation) == (batch_id, 0)
    assert await _pick_up(sessionmaker) == []  # leased: not started twice

    def connection_lost(done: int, total: int) -> None:
        raise ConnectionResetError("connection reset by peer")

    with pytest.raises(ConnectionResetError):
        await batch.run(
            sessionmaker, 2027, AS_OF, batch_id=batch_id, actor="test", progress=connection_lost, generation=0
        )
    partial = len(await _invited(sessionmaker))
    assert 0 < partial < sum(expected.values())
    stopped = await _row(sessionmaker, batch_id)
    assert (stopped["state"], stopped["errors"]) == ("running", [])  # left for a take-over
    assert await _pick_up(sessionmaker) == []  # until its lease runs out

    await _expire_lease(sessionmaker, batch_id)
    (again,) = await _pick_up(sessionmaker)
    assert (again.batch_id, again.generation) == (batch_id, 1)
    assert batch_job_id("q", batch_id, again.requested_at, 1) != batch_job_id(
        "q", batch_id, again.requested_at
    )

    # The killed generation's job, run late by arq, does nothing.
    late = await batch.run(sessionmaker, 2027, AS_OF, batch_id=batch_id, actor="test", generation=0)
    assert (late.planned, late.created) == (0, 0)
    result = await batch.run(sessionmaker, 2027, AS_OF, batch_id=batch_id, actor="test", generation=1)
    assert result.created == sum(expected.values()) - partial
    invited = await _invited(sessionmaker)
    assert len(invited) == len({r for _, r, _ in invited}) == sum(expected.values())
    done = await _row(sessionmaker, batch_id)
    assert (done["state"], done["resumes"], done["leased"]) == ("done", 1, None)
    assert done["total"] == done["done"] == done["created"] == sum(expected.values())
    await _expire_lease(sessionmaker, batch_id)
    assert await _pick_up(sessionmaker) == []  # a finished batch is never picked up


async def test_a_bug_ends_a_worker_run_as_failed_at_once(
    sessionmaker: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    await _region(sessionmaker, make_unit)
    batch_id = await _new_batch(sessionmaker)
    await _pick_up(sessionmaker)

    def bug(done: int, total: int) -> None:
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await batch.run(
            sessionmaker, 2027, AS_OF, batch_id=batch_id, actor="test", progress=bug, generation=0
        )
    row = await _row(sessionmaker, batch_id)
    assert row["state"] == "failed"
    assert [e["error"] for e in row["errors"]] == ["ZeroDivisionError"]  # type: ignore[attr-defined]


async def test_a_stopped_command_line_run_and_a_batch_stopped_too_often_end_failed_with_the_reason(
    sessionmaker: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    await _region(sessionmaker, make_unit)
    async with session_scope(sessionmaker) as s:
        inline = await batch.new_batch(s, 2027, actor="cli", as_of=AS_OF, inline=True)
    worn = await _new_batch(sessionmaker)
    async with session_scope(sessionmaker) as s:
        await s.execute(
            text("UPDATE batch_runs SET resumes = :n WHERE id = :id"), {"n": batch.MAX_RESUMES, "id": worn}
        )
    # The command-line run is never the worker's to start, even while its command runs.
    assert [p.batch_id for p in await _pick_up(sessionmaker)] == [worn]
    assert (await _row(sessionmaker, inline))["state"] == "running"

    for batch_id in (inline, worn):
        await _expire_lease(sessionmaker, batch_id)
    assert await _pick_up(sessionmaker) == []
    stopped_cli, stopped_often = await _row(sessionmaker, inline), await _row(sessionmaker, worn)
    assert (stopped_cli["state"], stopped_often["state"]) == ("failed", "failed")
    assert "the command that ran it stopped" in stopped_cli["errors"][0]["reason"]  # type: ignore[index]
    assert stopped_often["errors"][0]["reason"] == f"stopped {batch.MAX_RESUMES + 1} times; not resumed again"  # type: ignore[index]
