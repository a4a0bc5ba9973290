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
import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.database import is_connection_error
from halsosamtal.core.errors import Conflict
from halsosamtal.invitations.pacing import Allocation, first_send_day, level, weekly_room, weeks_of
from halsosamtal.programmes.models import ProgrammeYear
from halsosamtal.programmes.service import get_year, require_year

log = logging.getLogger(__name__)

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
        (year, age, resident_id, care_unit_id, batch_id, planned_send_on, status, valid_until,
         created_at, updated_at)
    SELECT :year, ranked.age, ranked.resident_id, :unit, :batch,
           greatest(alloc.week, :first_day), 'planned', :valid_until,
           CAST(:now AS timestamptz), CAST(:now AS timestamptz)
    FROM ranked JOIN alloc
      ON alloc.preferred = ranked.preferred AND ranked.rn BETWEEN alloc.lo AND alloc.hi
    ON CONFLICT (resident_id, year, age) DO NOTHING
    RETURNING id, resident_id, planned_send_on
),
messages AS (
    INSERT INTO messages (resident_id, invitation_id, kind, send_on, created_at)
    SELECT resident_id, id, 'invitation', planned_send_on, CAST(:now AS timestamptz) FROM ins
),
events AS (
    INSERT INTO invitation_events (invitation_id, from_status, to_status, reason, actor, at)
    SELECT id, NULL, 'planned', :reason, :actor, CAST(:now AS timestamptz) FROM ins
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


LEASE_S = 30
"""A batch's lease (``settings.batch_lease_s`` on the worker): its runner renews it every third
of it; a batch whose lease ran out has lost its runner (killed, or cut off from the database),
and the worker takes it over."""


class Superseded(Exception):
    """The batch is no longer this run's: it ended, or the worker gave it to a newer run."""


async def _renew(engine: Any, batch_id: int, generation: int | None, lease_s: float) -> bool:
    """Renew the lease while the batch is still this run's (its generation, for the worker)."""
    async with engine.begin() as conn:
        renewed = await conn.scalar(
            text(
                "UPDATE batch_runs SET lease_until = now() + make_interval(secs => :lease) "
                "WHERE id = :id AND state IN ('queued', 'running') "
                "AND (CAST(:generation AS int) IS NULL OR resumes = :generation) RETURNING id"
            ),
            {"id": batch_id, "generation": generation, "lease": lease_s},
        )
    return renewed is not None


async def _keep_lease(
    engine: Any,
    batch_id: int,
    generation: int | None,
    lease_s: float,
    runner: asyncio.Task[Any],
    lost: asyncio.Event,
) -> None:
    """Renew the lease until cancelled; stop the run (``runner``) when the batch is no longer
    its. A failed renewal (the database away for a moment) is tried again at the next beat."""
    while True:
        await asyncio.sleep(lease_s / 3)
        try:
            still_ours = await _renew(engine, batch_id, generation, lease_s)
        except Exception as exc:  # the run itself meets the same trouble and says so
            log.warning("batch %s: lease not renewed (%s)", batch_id, type(exc).__name__)
            continue
        if not still_ours:
            log.warning("batch %s was taken over or ended elsewhere; this run stops", batch_id)
            lost.set()
            runner.cancel()
            return


async def run(
    sessionmaker: async_sessionmaker[AsyncSession],
    year: int,
    as_of: dt.date,
    *,
    batch_id: int,
    actor: str,
    progress: Callable[[int, int], None] | None = None,
    generation: int | None = None,
    lease_s: float = LEASE_S,
) -> BatchResult:
    """Write the plan: one transaction per unit. Safe to run again, and concurrently.

    The run holds a lease on its batch row, renewed while it runs. ``generation`` is the
    worker's: the run stops when the batch has a newer one (the reconciler resumed it), and a
    run the database or the process cut short leaves the batch running for the next generation
    to finish; any other failure ends it as failed with the reason. Without a generation (a
    command-line run) every failure ends it as failed."""
    engine = sessionmaker.kw["bind"]
    if not await _renew(engine, batch_id, generation, lease_s):
        return BatchResult(batch_id=batch_id, planned=0, created=0)
    current = asyncio.current_task()
    assert current is not None
    lost = asyncio.Event()
    keeper = asyncio.create_task(_keep_lease(engine, batch_id, generation, lease_s, current, lost))
    try:
        async with engine.connect() as lock:
            lock = await lock.execution_options(isolation_level="AUTOCOMMIT")
            # Concurrent runs of the same year take turns; the second then finds nothing to do.
            await lock.execute(text("SELECT pg_advisory_lock(:ns, :year)"), {"ns": BATCH_LOCK, "year": year})
            try:
                return await _run_locked(sessionmaker, year, as_of, batch_id, actor, progress, generation)
            finally:
                await lock.execute(
                    text("SELECT pg_advisory_unlock(:ns, :year)"), {"ns": BATCH_LOCK, "year": year}
                )
    except asyncio.CancelledError as exc:
        if lost.is_set():
            current.uncancel()
            return BatchResult(batch_id=batch_id, planned=0, created=0)
        if generation is None:
            await mark_failed(sessionmaker, batch_id, exc)
        raise
    except BaseException as exc:
        if generation is None or not is_connection_error(exc):
            await mark_failed(sessionmaker, batch_id, exc)
        else:
            log.warning(
                "batch %s stopped (%s); it resumes when its lease runs out", batch_id, type(exc).__name__
            )
        raise
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)


def _json_error(exc: BaseException | None, reason: str | None = None) -> str:
    import json

    known: dict[type[BaseException], str] = {
        KeyboardInterrupt: "interrupted (Ctrl-C)",
        asyncio.CancelledError: "cancelled (the process stopped)",
    }
    reason = reason or (known.get(type(exc)) if exc is not None else None)
    entry = {"error": type(exc).__name__ if exc else "Stopped", "at": dt.datetime.now(dt.UTC).isoformat()}
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
    generation: int | None,
) -> BatchResult:
    async with sessionmaker() as s, s.begin():
        the_plan = await plan(s, year, as_of)
        programme = await get_year(s, year)
        valid_until = programme.valid_until
        # A resumed run plans only what is still missing: what earlier runs of this batch
        # created stays counted, so done of total goes on from where it stopped.
        started = await s.scalar(
            text(
                "UPDATE batch_runs SET state = 'running', started_at = coalesce(started_at, now()), "
                "total = created + :total, done = created WHERE id = :id "
                "AND state IN ('queued', 'running') "
                "AND (CAST(:generation AS int) IS NULL OR resumes = :generation) RETURNING id"
            ),
            {"id": batch_id, "total": the_plan.total, "generation": generation},
        )
    if started is None:  # finished or taken over while this run waited for the lock
        return BatchResult(batch_id=batch_id, planned=0, created=0)
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
                    "now": clock.now(),
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
            text(
                "UPDATE batch_runs SET state = 'done', finished_at = now(), lease_until = NULL "
                "WHERE id = :id AND state = 'running'"
            ),
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
            "INSERT INTO batch_runs (year, requested_by, as_of, state, started_at, inline, lease_until) "
            "VALUES (:year, :actor, :as_of, :state, CASE WHEN :inline THEN now() END, :inline, "
            "CASE WHEN :inline THEN now() + make_interval(secs => :lease) END) "
            "RETURNING id"
        ),
        {
            "year": year,
            "actor": actor,
            "as_of": as_of,
            "state": "running" if inline else "queued",
            "inline": inline,
            "lease": float(LEASE_S),
        },
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
                "UPDATE batch_runs SET state = 'failed', finished_at = now(), lease_until = NULL, "
                "errors = errors || CAST(:error AS jsonb) WHERE id = :id AND state IN ('queued', 'running')"
            ),
            {"id": batch_id, "error": _json_error(exc)},
        )


MAX_RESUMES = 5
"""Take-overs of one batch before it is ended as failed: a batch that stops again and again has
something wrong with it that another try will not mend."""


@dataclass(frozen=True)
class Pickup:
    """A batch for the worker to start: its arq job is ``generation``'s."""

    batch_id: int
    requested_at: dt.datetime
    generation: int


_END_STALLED = text("""
UPDATE batch_runs SET state = 'failed', finished_at = now(), lease_until = NULL,
    errors = errors || jsonb_build_array(jsonb_build_object(
        'error', 'Stopped', 'at', now(),
        'reason', CASE WHEN inline THEN 'the command that ran it stopped (no sign of it since '
                                         || to_char(lease_until, 'YYYY-MM-DD"T"HH24:MI:SSOF') || ')'
                       ELSE 'stopped ' || resumes + 1 || ' times; not resumed again' END))
WHERE state IN ('queued', 'running') AND lease_until < now() AND (inline OR resumes >= :max)
RETURNING id
""")

_PICK_UP = text("""
UPDATE batch_runs
SET resumes = resumes + CASE WHEN lease_until IS NULL THEN 0 ELSE 1 END,
    lease_until = now() + make_interval(secs => :lease)
WHERE state IN ('queued', 'running') AND NOT inline AND (lease_until IS NULL OR lease_until < now())
RETURNING id, requested_at, resumes
""")


async def pick_up(session: AsyncSession, lease_s: float = LEASE_S) -> list[Pickup]:
    """The batches a worker should start now, each under a fresh lease: those never started
    (queued, no lease) and those whose run stopped (its lease ran out: the worker was killed,
    lost Redis, or the queue was emptied), the latter as a new generation. Batches that stopped
    ``MAX_RESUMES`` times, and command-line runs whose command stopped, are ended as failed
    with the reason. Postgres is the truth here: Redis may have lost every job."""
    ended = (await session.scalars(_END_STALLED, {"max": MAX_RESUMES})).all()
    if ended:
        log.warning("batches %s ended as failed: their runs stopped", ", ".join(map(str, ended)))
    rows = (await session.execute(_PICK_UP, {"lease": float(lease_s)})).all()
    return [Pickup(r.id, r.requested_at, r.resumes) for r in rows]
