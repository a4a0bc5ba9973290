"""A programme year's invitation batch: plan (read-only) and run (writes exactly the plan).

Who is invited: every resident turning a target age during the year who lives in the region
on the planning day and is listed at a participating unit, once per resident, year and age.

Run is set-based and resumable: one transaction per care unit inserts that unit's invitations,
their planned invitation messages and their first history rows in a single INSERT ... SELECT
with ON CONFLICT DO NOTHING, so a worker killed at any moment leaves each resident either
fully invited or not at all, and the next run completes the rest. A session-level advisory lock
makes concurrent runs of one year take turns; the unique constraint is the last guard.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict
from halsosamtal.invitations.pacing import Allocation, first_send_day, level, weekly_room, weeks_of
from halsosamtal.programmes.models import ProgrammeYear
from halsosamtal.programmes.service import get_year, require_year

# Advisory lock namespace for batch runs (the second key is the year).
BATCH_LOCK = 7_364_001
# Units written at once: about one per core of the database server.
UNITS_AT_ONCE = 2

# The preferred send week of a resident born on r.birth_date, for :year, never before :first_day
# (the year's start, or the planning day). Mirrors pacing.preferred_day (tested to agree).
PREFERRED_WEEK = """
date_trunc('week', greatest(
    CASE WHEN extract(month FROM r.birth_date) = 1 THEN make_date(:year, 1, 1)
    ELSE make_date(:year, extract(month FROM r.birth_date)::int - 1, least(
        extract(day FROM r.birth_date)::int,
        extract(day FROM make_date(:year, extract(month FROM r.birth_date)::int, 1) - 1)::int))
    END, :first_day))::date
"""


def invitable(ages: list[int]) -> str:
    """FROM ... WHERE for residents who should be invited: turning a target age (``t.age``),
    alive and living in the region on :as_of, listed at a participating unit.

    Each age is a birth-date range with constant bounds (:born_from_N, :born_before_N, see
    :func:`_params`), so Postgres reads only those index ranges rather than every resident of a
    unit: with parameters computed in SQL it cannot estimate the ranges and scans far more."""
    ranges = " OR ".join(
        f"(r.birth_date >= :born_from_{i} AND r.birth_date < :born_before_{i})" for i in range(len(ages))
    )
    return f"""
FROM residents r
JOIN care_units cu ON cu.id = r.care_unit_id AND cu.participating
CROSS JOIN LATERAL (SELECT CAST(:year AS int) - extract(year FROM r.birth_date)::int AS age) t
WHERE ({ranges})
  AND (r.deceased_on IS NULL OR r.deceased_on > :as_of)
  AND (r.emigrated_on IS NULL OR r.emigrated_on > :as_of)
  AND (r.moved_out_on IS NULL OR r.moved_out_on > :as_of)
"""


def uninvited(ages: list[int]) -> str:
    """:func:`invitable`, less those already invited for this year and age."""
    return (
        invitable(ages)
        + """  AND NOT EXISTS (
      SELECT 1 FROM invitations i
      WHERE i.resident_id = r.id AND i.year = :year AND i.age = t.age)
"""
    )


class YearOver(Conflict):
    """A batch for a year whose last sending day has passed: it would invite no one."""

    code = "programme-year-over"


def check_year_open(year: int, as_of: dt.date) -> None:
    """Invitations of a year are sent in that year's weeks; once the year is over a batch
    would invite no one, so it is refused with the reason instead of running empty."""
    if as_of > dt.date(year, 12, 31):
        raise YearOver(
            f"{year} is over (as of {as_of.isoformat()}): invitations of {year} are sent in "
            f"{year}'s weeks, so a batch now would invite no one; residents of {year} who were "
            "never invited can no longer be",
            field="year",
            year=year,
        )


@dataclass(frozen=True)
class UnitMonth:
    """One line of the plan: a unit's invitations in a month, with the room it has."""

    care_unit_id: int
    hsa_id: str
    name: str
    month: int
    invitations: int
    already_planned: int
    expected_bookings: Decimal
    capacity: int
    over_capacity: bool


@dataclass
class BatchPlan:
    year: int
    as_of: dt.date
    expected_uptake: Decimal
    allocations: list[Allocation] = field(default_factory=list)
    lines: list[UnitMonth] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(a.count for a in self.allocations)


def _params(programme: ProgrammeYear, as_of: dt.date) -> dict[str, Any]:
    params: dict[str, Any] = {
        "year": programme.year,
        "as_of": as_of,
        "first_day": first_send_day(programme.year, as_of),
    }
    for i, age in enumerate(programme.target_ages):
        params[f"born_from_{i}"] = dt.date(programme.year - age, 1, 1)
        params[f"born_before_{i}"] = dt.date(programme.year - age + 1, 1, 1)
    return params


async def plan(session: AsyncSession, year: int, as_of: dt.date) -> BatchPlan:
    """The plan for the residents not yet invited: per unit, how many go out in which week.
    Reads only."""
    programme = await require_year(session, year)
    check_year_open(year, as_of)
    params = _params(programme, as_of)
    weeks = weeks_of(year, as_of)
    uptake = Decimal(programme.expected_uptake)

    demand: dict[int, dict[dt.date, int]] = defaultdict(dict)
    rows = await session.execute(
        text(
            f"SELECT r.care_unit_id, {PREFERRED_WEEK} AS week, count(*) "
            f"{uninvited(list(programme.target_ages))} GROUP BY 1, 2"
        ),
        params,
    )
    for unit_id, week, count in rows:
        demand[unit_id][week] = count

    existing: dict[int, dict[dt.date, int]] = defaultdict(dict)
    rows = await session.execute(
        text(
            "SELECT care_unit_id, date_trunc('week', planned_send_on)::date, count(*) "
            "FROM invitations WHERE year = :year GROUP BY 1, 2"
        ),
        {"year": year},
    )
    for unit_id, week, count in rows:
        existing[unit_id][week] = count

    units = (
        await session.execute(
            text(
                "SELECT id, hsa_id, name, weekly_capacity FROM care_units "
                "WHERE participating OR id = ANY(:ids) ORDER BY hsa_id"
            ),
            {"ids": list(demand) + list(existing)},
        )
    ).all()
    result = BatchPlan(year=year, as_of=as_of, expected_uptake=uptake)
    first_day = params["first_day"]
    for unit_id, hsa_id, name, capacity in units:
        room = weekly_room(capacity, uptake)
        allocations = level(unit_id, demand.get(unit_id, {}), room, weeks, existing.get(unit_id))
        result.allocations.extend(allocations)
        by_month: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        for w in weeks:
            by_month[max(w, first_day).month][2] += capacity
        for a in allocations:
            by_month[max(a.week, first_day).month][0] += a.count
        for w, n in existing.get(unit_id, {}).items():
            by_month[max(w, first_day).month][1] += n
        over = {
            max(w, first_day).month
            for w in weeks
            if sum(a.count for a in allocations if a.week == w) + existing.get(unit_id, {}).get(w, 0) > room
        }
        for month in sorted(by_month):
            new, old, cap = by_month[month]
            if not (new or old):
                continue
            result.lines.append(
                UnitMonth(
                    care_unit_id=unit_id,
                    hsa_id=hsa_id,
                    name=name,
                    month=month,
                    invitations=new,
                    already_planned=old,
                    expected_bookings=(uptake * (new + old)).quantize(Decimal("0.1")),
                    capacity=cap,
                    over_capacity=month in over,
                )
            )
    return result


def insert_unit_sql(ages: list[int]) -> str:
    return f"""
WITH alloc AS (
    SELECT * FROM unnest(CAST(:preferred AS date[]), CAST(:week AS date[]),
                         CAST(:lo AS int[]), CAST(:hi AS int[])) AS a(preferred, week, lo, hi)
),
ranked AS (
    SELECT r.id AS resident_id, t.age, {PREFERRED_WEEK} AS preferred,
           row_number() OVER (PARTITION BY {PREFERRED_WEEK} ORDER BY r.birth_date, r.id) AS rn
    {uninvited(ages)} AND r.care_unit_id = :unit
),
ins AS (
    INSERT INTO invitations
        (year, age, resident_id, care_unit_id, batch_id, planned_send_on, status, valid_until)
    SELECT :year, ranked.age, ranked.resident_id, :unit, :batch,
           greatest(alloc.week, :first_day), 'planned', :valid_until
    FROM ranked JOIN alloc
      ON alloc.preferred = ranked.preferred AND ranked.rn BETWEEN alloc.lo AND alloc.hi
    ON CONFLICT (resident_id, year, age) DO NOTHING
    RETURNING id, resident_id, planned_send_on
),
messages AS (
    INSERT INTO messages (resident_id, invitation_id, kind, send_on)
    SELECT resident_id, id, 'invitation', planned_send_on FROM ins
),
events AS (
    INSERT INTO invitation_events (invitation_id, from_status, to_status, reason, actor)
    SELECT id, NULL, 'planned', :reason, :actor FROM ins
)
SELECT count(*) FROM ins
"""


def _ranges(allocations: list[Allocation]) -> dict[str, list[Any]]:
    """Rank ranges per preferred week: the earliest-born go in the earliest target week."""
    columns: dict[str, list[Any]] = {"preferred": [], "week": [], "lo": [], "hi": []}
    taken: dict[dt.date, int] = defaultdict(int)
    for a in sorted(allocations, key=lambda a: (a.preferred, a.week)):
        lo = taken[a.preferred] + 1
        taken[a.preferred] += a.count
        columns["preferred"].append(a.preferred)
        columns["week"].append(a.week)
        columns["lo"].append(lo)
        columns["hi"].append(taken[a.preferred])
    return columns


@dataclass(frozen=True)
class BatchResult:
    batch_id: int
    planned: int
    created: int


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    year: int,
    as_of: dt.date,
    *,
    batch_id: int,
    actor: str,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Write the plan: one transaction per unit. Safe to run again, and concurrently."""
    engine = sessionmaker.kw["bind"]
    async with engine.connect() as lock:
        lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
        # Concurrent runs of the same year take turns; the second then finds nothing to do.
        await lock.execute(text("SELECT pg_advisory_lock(:ns, :year)"), {"ns": BATCH_LOCK, "year": year})
        try:
            return await _run_locked(sessionmaker, year, as_of, batch_id, actor, progress)
        except BaseException as exc:
            await mark_failed(sessionmaker, batch_id, exc)
            raise
        finally:
            await lock.execute(
                text("SELECT pg_advisory_unlock(:ns, :year)"), {"ns": BATCH_LOCK, "year": year}
            )


def _json_error(exc: BaseException) -> str:
    import json

    reason = {
        KeyboardInterrupt: "interrupted (Ctrl-C)",
        asyncio.CancelledError: "cancelled (the process stopped)",
    }.get(type(exc))
    entry = {"error": type(exc).__name__, "at": dt.datetime.now(dt.UTC).isoformat()}
    if reason:
        entry["reason"] = reason
    return json.dumps([entry])


async def _run_locked(
    sessionmaker: async_sessionmaker[AsyncSession],
    year: int,
    as_of: dt.date,
    batch_id: int,
    actor: str,
    progress: Callable[[int, int], None] | None,
) -> BatchResult:
    async with sessionmaker() as s, s.begin():
        the_plan = await plan(s, year, as_of)
        programme = await get_year(s, year)
        valid_until = programme.valid_until
        await s.execute(
            text(
                "UPDATE batch_runs SET state = 'running', started_at = now(), total = :total, "
                "done = 0, created = 0 WHERE id = :id"
            ),
            {"id": batch_id, "total": the_plan.total},
        )
    by_unit: dict[int, list[Allocation]] = defaultdict(list)
    for a in the_plan.allocations:
        by_unit[a.care_unit_id].append(a)
    params = _params(programme, as_of)
    sql = text(insert_unit_sql(list(programme.target_ages)))
    counts = {"done": 0, "created": 0}
    # Units have disjoint residents, so two can be written at once (one per core); each unit
    # is still one transaction, so a crash leaves every unit all or nothing.
    gate = asyncio.Semaphore(UNITS_AT_ONCE)

    async def write_unit(unit_id: int, allocations: list[Allocation]) -> None:
        async with gate, sessionmaker() as s, s.begin():
            inserted = await s.scalar(
                sql,
                {
                    **params,
                    **_ranges(allocations),
                    "unit": unit_id,
                    "batch": batch_id,
                    "valid_until": valid_until,
                    "reason": f"batch {batch_id}",
                    "actor": actor,
                },
            )
            done, created = sum(a.count for a in allocations), inserted or 0
            counts["done"] += done
            counts["created"] += created
            # Each unit adds its own numbers: two units' transactions may reach the row in
            # either order, and writing running totals let the earlier total land last.
            await s.execute(
                text(
                    "UPDATE batch_runs SET done = done + :done, created = created + :created WHERE id = :id"
                ),
                {"id": batch_id, "done": done, "created": created},
            )
        if progress is not None:
            progress(counts["done"], the_plan.total)

    tasks = [asyncio.ensure_future(write_unit(u, by_unit[u])) for u in sorted(by_unit)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    created = counts["created"]
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text("UPDATE batch_runs SET state = 'done', finished_at = now() WHERE id = :id"),
            {"id": batch_id},
        )
    return BatchResult(batch_id=batch_id, planned=the_plan.total, created=created)


async def new_batch(
    session: AsyncSession,
    year: int,
    *,
    actor: str,
    as_of: dt.date | None = None,
    inline: bool = False,
) -> int:
    """Record a batch run: 'queued' for the worker to carry out, or, ``inline``, 'running' in
    the process that asked (the CLI), which the worker never picks up: a command that fails
    leaves nothing behind that acts on its own."""
    await require_year(session, year)
    check_year_open(year, as_of or clock.local_today())
    batch_id = await session.scalar(
        text(
            "INSERT INTO batch_runs (year, requested_by, as_of, state, started_at) "
            "VALUES (:year, :actor, :as_of, :state, CASE WHEN :state = 'running' THEN now() END) "
            "RETURNING id"
        ),
        {"year": year, "actor": actor, "as_of": as_of, "state": "running" if inline else "queued"},
    )
    assert batch_id is not None
    return int(batch_id)


async def mark_failed(
    sessionmaker: async_sessionmaker[AsyncSession], batch_id: int, exc: BaseException
) -> None:
    """End a batch that could not run as 'failed', with the reason."""
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "UPDATE batch_runs SET state = 'failed', finished_at = now(), "
                "errors = errors || CAST(:error AS jsonb) WHERE id = :id AND state IN ('queued', 'running')"
            ),
            {"id": batch_id, "error": _json_error(exc)},
        )
