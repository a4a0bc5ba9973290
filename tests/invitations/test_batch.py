from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.invitations import batch
from halsosamtal.invitations.pacing import first_send_day, preferred_day, week_start
from halsosamtal.programmes.schemas import ProgrammeRules
from halsosamtal.programmes.service import set_year
from halsosamtal.units.models import CareUnit
from tests.factories import personnummer

AS_OF = dt.date(2026, 12, 1)


@pytest.mark.parametrize(("year", "as_of"), [(2027, AS_OF), (2028, dt.date(2028, 5, 17))])
async def test_sql_preferred_week_agrees_with_pacing(
    sessionmaker: async_sessionmaker[AsyncSession], year: int, as_of: dt.date
) -> None:
    births = [dt.date(1987, 1, 1) + dt.timedelta(days=i) for i in range(366)]
    births += [dt.date(1988, 1, 1) + dt.timedelta(days=i) for i in range(366)]  # leap year
    sql = f"SELECT r.birth_date, {batch.PREFERRED_WEEK} FROM unnest(CAST(:births AS date[])) AS r(birth_date)"
    async with sessionmaker() as s:
        rows = (
            await s.execute(
                text(sql), {"births": births, "year": year, "first_day": first_send_day(year, as_of)}
            )
        ).all()
    for birth, week in rows:
        expected = week_start(max(preferred_day(birth, year), first_send_day(year, as_of)))
        assert week == expected, birth


async def _region(
    sm: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]], n: int = 600
) -> tuple[list[CareUnit], dict[str, int]]:
    small = await make_unit(participating=True, weekly_capacity=3)
    big = await make_unit(participating=True, weekly_capacity=20)
    off = await make_unit(participating=False, weekly_capacity=20)
    rng = random.Random(7)
    rows = []
    expected = Counter()
    for i in range(n):
        age = rng.choice([40, 50, 60, 45])
        birth = dt.date(2027 - age, 1, 1) + dt.timedelta(days=rng.randrange(365))
        unit = rng.choice([small, small, big, off, None])
        dead = dt.date(2026, 6, 1) if i % 97 == 0 else None
        pnr = personnummer(birth, sex=rng.choice("FM"))
        rows.append(
            {
                "pnr": pnr,
                "birth": birth,
                "sex": "M" if int(pnr[-2]) % 2 else "F",
                "unit": unit.id if unit else None,
                "dead": dead,
            }
        )
        if age != 45 and unit is not None and unit.participating and dead is None:
            expected[unit.hsa_id] += 1
    async with sm() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO residents (personnummer, birth_date, sex, care_unit_id, deceased_on) "
                "VALUES (:pnr, :birth, :sex, :unit, :dead)"
            ),
            rows,
        )
        await set_year(
            s,
            2027,
            ProgrammeRules(target_ages=[40, 50, 60], talk_rate=1000, valid_until=dt.date(2028, 3, 31)),
            actor="test",
        )
    return [small, big, off], dict(expected)


async def _invited(sm: async_sessionmaker[AsyncSession]) -> list[tuple[int, int, dt.date]]:
    async with sm() as s:
        return [
            tuple(r)
            for r in await s.execute(
                text("SELECT care_unit_id, resident_id, planned_send_on FROM invitations ORDER BY 2")
            )
        ]


async def _new_batch(sm: async_sessionmaker[AsyncSession]) -> int:
    async with sm() as s, s.begin():
        return await batch.new_batch(s, 2027, actor="test")


async def test_run_writes_exactly_the_plan_and_a_second_run_adds_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    units, expected = await _region(sessionmaker, make_unit)
    async with sessionmaker() as s:
        the_plan = await batch.plan(s, 2027, AS_OF)
    assert the_plan.total == sum(expected.values())
    planned = Counter({(a.care_unit_id, max(a.week, dt.date(2027, 1, 1))): 0 for a in the_plan.allocations})
    for a in the_plan.allocations:
        planned[(a.care_unit_id, max(a.week, dt.date(2027, 1, 1)))] += a.count

    result = await batch.run(sessionmaker, 2027, AS_OF, batch_id=await _new_batch(sessionmaker), actor="test")
    assert (result.planned, result.created) == (the_plan.total, the_plan.total)
    invited = await _invited(sessionmaker)
    assert Counter((u, d) for u, _, d in invited) == +planned
    assert {
        u.hsa_id: sum(1 for i in invited if i[0] == u.id) for u in units if u.hsa_id in expected
    } == expected
    # The small unit (3 talks a week at 50 % uptake: 6 invitations a week) never goes over.
    small = units[0]
    assert max(Counter(d for u, _, d in invited if u == small.id).values()) <= 6

    async with sessionmaker() as s:
        counts = (
            await s.execute(
                text(
                    "SELECT (SELECT count(*) FROM invitations),"
                    " (SELECT count(*) FROM messages WHERE kind = 'invitation' AND status = 'planned'),"
                    " (SELECT count(*) FROM invitation_events WHERE to_status = 'planned'),"
                    " (SELECT count(*) FROM messages m JOIN invitations i"
                    "  ON i.id = m.invitation_id AND m.send_on = i.planned_send_on)"
                )
            )
        ).one()
    assert set(counts) == {len(invited)}

    again = await batch.run(sessionmaker, 2027, AS_OF, batch_id=await _new_batch(sessionmaker), actor="test")
    assert (again.planned, again.created) == (0, 0)
    assert await _invited(sessionmaker) == invited


async def test_concurrent_runs_create_no_duplicates(
    sessionmaker: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    _, expected = await _region(sessionmaker, make_unit)
    ids = [await _new_batch(sessionmaker) for _ in range(3)]
    results = await asyncio.gather(
        *(batch.run(sessionmaker, 2027, AS_OF, batch_id=i, actor="test") for i in ids)
    )
    assert sum(r.created for r in results) == sum(expected.values())
    invited = await _invited(sessionmaker)
    assert len(invited) == len({r for _, r, _ in invited}) == sum(expected.values())


async def test_an_interrupted_run_is_completed_by_the_next(
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One unit at a time, so the crash after the first unit leaves exactly that unit written
    # (with two at once the other may commit too; the SIGKILL test covers that path).
    monkeypatch.setattr(batch, "UNITS_AT_ONCE", 1)
    _, expected = await _region(sessionmaker, make_unit)
    first = await _new_batch(sessionmaker)

    class Killed(Exception):
        pass

    def die_after_first_unit(done: int, total: int) -> None:
        raise Killed

    with pytest.raises(Killed):
        await batch.run(
            sessionmaker, 2027, AS_OF, batch_id=first, actor="test", progress=die_after_first_unit
        )
    partial = await _invited(sessionmaker)
    assert 0 < len(partial) < sum(expected.values())
    async with sessionmaker() as s:
        assert await s.scalar(text("SELECT state FROM batch_runs WHERE id = :i"), {"i": first}) == "failed"
    result = await batch.run(sessionmaker, 2027, AS_OF, batch_id=await _new_batch(sessionmaker), actor="test")
    invited = await _invited(sessionmaker)
    assert result.created == sum(expected.values()) - len(partial)
    assert len(invited) == len({r for _, r, _ in invited}) == sum(expected.values())
