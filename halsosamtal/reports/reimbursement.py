"""The reimbursement statement: what each care unit is paid, per month, derived (never stored)
from ``result_events``, the listing register and ``reimbursement_closings``.

Lines:

* **talk** ``talk-<event id>``: each ``completed`` result event (the first post, or a post again
  after a retraction) is one talk in the month of the event (Swedish time), for the unit whose
  EHR posted the result, at the talk rate of the invitation's programme year.
* **reversal** ``reversal-<event id>``: a ``retracted`` event undoes the completion before it
  (same result). When that completion's month was closed before the retraction was recorded,
  the retraction is a negative line in the retraction's own month; when the month was still
  open, the completion's line is simply void (not shown): an open month may still change.
* **start_grant** ``grant-<year>-<HSA-id>``: where the year has a start grant, one line per unit
  in January: quantity = residents listed at the unit on 1 January (``listing_periods``), living
  in the region that day, who turn a target age that year; amount = quantity x start grant.
  Units: those taking part (participating, or with an invitation of the year, so a unit that
  leaves later keeps its January line).

A **closed month never changes.** "Before" and "after" a close are decided by the order in
which events were recorded, not by timestamps: the close locks ``result_events`` against
writers and keeps the last event id it saw, and an event with a greater id came after. (A
result posted in a transaction that began before a month ended but was recorded after that
month was closed is counted in the first later month not closed when it was recorded, never in
a closed month.)
The rates of a closed month are the programme year's rules in force when it was closed (its
latest revision by then); rates changed later apply to open months only. Each close records the
month's line count, total and a digest of its lines; the statement says for each closed month
whether a recomputation still gives the same (it always should).

Closing: a month can be closed once it has ended (Swedish time), once, and in order: every
earlier month with result events (or a start grant) must be closed first; otherwise 409.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict, InvalidInput
from halsosamtal.reports.models import ReimbursementClosing
from halsosamtal.reports.schemas import (
    ClosedMonth,
    MonthState,
    ReimbursementStatement,
    StatementLine,
    StatementTotal,
)
from halsosamtal.reports.scope import EVERYTHING, NO_JIT, Scope

log = logging.getLogger("halsosamtal.reports")

CENTS = Decimal("0.01")
_LINES = TypeAdapter(list[StatementLine])


class MonthNotEnded(Conflict):
    code = "month-not-ended"
    title = "The month has not ended"


class MonthClosed(Conflict):
    code = "month-closed"
    title = "The month is already closed"


class EarlierMonthOpen(Conflict):
    code = "earlier-month-open"
    title = "An earlier month is still open"


# The rules a line is paid at: per (programme year, month), those in force when the month was
# closed, else the current ones. Rows made without a revision (loaded directly) fall back to
# the programme_years row.
_PAID = """
paid AS (
  SELECT pm.programme_year, pm.month,
         coalesce(rev.rules, jsonb_build_object(
           'talk_rate', py.talk_rate, 'start_grant', py.start_grant,
           'target_ages', to_jsonb(py.target_ages))) AS rules
  FROM paid_months pm
  JOIN programme_years py ON py.year = pm.programme_year
  LEFT JOIN reimbursement_closings pcl ON pcl.month = pm.month
  LEFT JOIN LATERAL (
    SELECT r.rules FROM programme_year_revisions r
    WHERE pcl.month IS NOT NULL AND r.year = pm.programme_year AND r.changed_at <= pcl.closed_at
    ORDER BY r.changed_at DESC, r.id DESC
    LIMIT 1
  ) rev ON true
)"""

_STATEMENT = f"""
WITH relevant AS (
  -- Results with an event that can give a line in the range: recorded in it, or recorded late
  -- (after its month was closed) for a month before it.
  SELECT e.result_id FROM result_events e
  WHERE e.kind IN ('completed', 'retracted') AND e.at >= :range_start AND e.at < :range_end
  UNION
  SELECT e.result_id FROM reimbursement_closings cl
  JOIN result_events e
    ON e.at >= cl.month::timestamp AT TIME ZONE 'Europe/Stockholm'
   AND e.at < (cl.month + interval '1 month') AT TIME ZONE 'Europe/Stockholm'
   AND e.id > cl.last_event_id
  WHERE e.kind IN ('completed', 'retracted') AND cl.month < :first_month
), ev AS (
  SELECT e.id, e.result_id, e.kind, e.at,
         CASE WHEN cl.month IS NOT NULL AND e.id > cl.last_event_id
              -- Recorded after its month was closed: it belongs to the first later month that
              -- was not closed yet when it was recorded (never to a closed month).
              THEN (SELECT min(g.m)::date
                    FROM generate_series(e.at_month + interval '1 month',
                                         (SELECT max(month) FROM reimbursement_closings) + interval '1 month',
                                         interval '1 month') AS g(m)
                    WHERE NOT EXISTS (SELECT 1 FROM reimbursement_closings c
                                      WHERE c.month = g.m::date AND c.last_event_id < e.id))
              ELSE e.at_month END AS month,
         count(*) FILTER (WHERE e.kind = 'completed') OVER (PARTITION BY e.result_id ORDER BY e.id)
           AS round
  FROM (
    SELECT e.*, date_trunc('month', e.at AT TIME ZONE 'Europe/Stockholm')::date AS at_month
    FROM result_events e
    WHERE e.result_id IN (SELECT result_id FROM relevant) AND e.kind IN ('completed', 'retracted')
  ) e
  LEFT JOIN reimbursement_closings cl ON cl.month = e.at_month
), retractions AS (
  -- Each retraction undoes the completion of its round (a second retraction undoes nothing).
  SELECT DISTINCT ON (result_id, round) * FROM ev
  WHERE kind = 'retracted' AND round > 0
  ORDER BY result_id, round, id
), pairs AS (
  SELECT c.id AS c_id, c.result_id, c.at AS c_at, c.month AS c_month,
         x.id AS x_id, x.at AS x_at, x.month AS x_month,
         x.id IS NOT NULL AND ccl.month IS NOT NULL AND x.id > ccl.last_event_id AS reversed
  FROM ev c
  LEFT JOIN retractions x ON x.result_id = c.result_id AND x.round = c.round
  LEFT JOIN reimbursement_closings ccl ON ccl.month = c.month
  WHERE c.kind = 'completed'
), talk_lines AS (
  SELECT 'talk' AS kind, 'talk-' || c_id AS id, c_month AS month, result_id, c_at AS event_at,
         NULL AS reverses, 1 AS quantity, c_month AS paid_month
  FROM pairs WHERE x_id IS NULL OR reversed
  UNION ALL
  -- Quantity -1 at the rate its talk was paid at.
  SELECT 'reversal', 'reversal-' || x_id, x_month, result_id, x_at, 'talk-' || c_id, -1, c_month
  FROM pairs WHERE reversed
), event_lines AS (
  SELECT t.*, r.care_unit_id, r.external_id, i.year AS programme_year
  FROM talk_lines t
  JOIN results r ON r.id = t.result_id
  JOIN invitations i ON i.id = r.invitation_id
  WHERE t.month BETWEEN :first_month AND :last_month
    AND (CAST(:units AS bigint[]) IS NULL OR r.care_unit_id = ANY(CAST(:units AS bigint[])))
), grant_months AS (
  SELECT CAST(:year AS int) AS programme_year, make_date(CAST(:year AS int), 1, 1) AS month
  WHERE CAST(:with_grant AS boolean)
), paid_months AS (
  SELECT DISTINCT programme_year, paid_month AS month FROM event_lines
  UNION SELECT programme_year, month FROM grant_months
), {_PAID.strip()}, grant_listed AS (
  -- Each resident once: the listing covering 1 January (the latest, should two overlap).
  SELECT DISTINCT ON (l.resident_id) l.care_unit_id, l.resident_id
  FROM listing_periods l
  JOIN residents r ON r.id = l.resident_id
  JOIN grant_months g ON true
  JOIN paid p ON p.programme_year = g.programme_year AND p.month = g.month
  WHERE (p.rules->>'start_grant')::numeric > 0
    AND l.listed_from <= g.month AND (l.listed_to IS NULL OR l.listed_to > g.month)
    AND (r.deceased_on IS NULL OR r.deceased_on > g.month)
    AND (r.emigrated_on IS NULL OR r.emigrated_on > g.month)
    AND (r.moved_out_on IS NULL OR r.moved_out_on > g.month)
    AND to_jsonb(g.programme_year - extract(year FROM r.birth_date)::int) <@ (p.rules->'target_ages')
  ORDER BY l.resident_id, l.listed_from DESC, l.id DESC
), grant_lines AS MATERIALIZED (
  -- Materialized: it is joined to each paid month, and is cheap to read but not to compute.
  SELECT 'start_grant' AS kind, 'grant-' || g.programme_year || '-' || u.hsa_id AS id, g.month,
         NULL::bigint AS result_id, NULL::timestamptz AS event_at, NULL AS reverses,
         gl.quantity, g.month AS paid_month, u.id AS care_unit_id, NULL AS external_id,
         g.programme_year
  FROM (SELECT care_unit_id, count(*) AS quantity FROM grant_listed GROUP BY care_unit_id) gl
  JOIN care_units u ON u.id = gl.care_unit_id
  JOIN grant_months g ON true
  WHERE (u.participating
         OR EXISTS (SELECT 1 FROM invitations i WHERE i.year = g.programme_year AND i.care_unit_id = u.id))
    AND (CAST(:units AS bigint[]) IS NULL OR u.id = ANY(CAST(:units AS bigint[])))
), lines AS (
  SELECT l.kind, l.id, l.month, u.hsa_id, u.name AS unit_name, l.external_id, l.event_at, l.reverses,
         l.programme_year, l.quantity,
         CASE WHEN l.kind = 'start_grant' THEN (p.rules->>'start_grant')::numeric
              ELSE (p.rules->>'talk_rate')::numeric END AS unit_amount
  FROM (SELECT * FROM event_lines UNION ALL SELECT * FROM grant_lines) l
  JOIN care_units u ON u.id = l.care_unit_id
  JOIN paid p ON p.programme_year = l.programme_year AND p.month = l.paid_month
)
SELECT GROUPING(id) AS g_line, GROUPING(hsa_id) AS g_unit, GROUPING(month) AS g_month,
       kind, id, to_char(month, 'YYYY-MM') AS month, hsa_id AS care_unit, unit_name AS care_unit_name,
       external_id, event_at, reverses, programme_year, quantity, round(unit_amount, 2) AS unit_amount,
       count(*) AS lines, round(coalesce(sum(quantity * unit_amount), 0), 2) AS amount
FROM lines
GROUP BY GROUPING SETS (
  (kind, id, month, hsa_id, unit_name, external_id, event_at, reverses, programme_year, quantity,
   unit_amount),
  (month, hsa_id, unit_name),
  (month),
  (hsa_id, unit_name),
  ()
)
-- Lines by month, unit, kind (grants, talks, reversals), time; then the totals month by month
-- (each unit, then the month), then per unit, then the whole period.
ORDER BY GROUPING(id) DESC, GROUPING(month), month, GROUPING(hsa_id), hsa_id,
         CASE kind WHEN 'start_grant' THEN 0 WHEN 'talk' THEN 1 ELSE 2 END, event_at, id
"""


def _month_start(year: int, month: int) -> dt.date:
    return dt.date(year, month, 1)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _ym(day: dt.date) -> str:
    return f"{day:%Y-%m}"


def _check_period(year: int, month: int | None) -> None:
    if not 2000 <= year <= 2100:
        raise InvalidInput("year must be from 2000 to 2100", field="year")
    if month is not None and not 1 <= month <= 12:
        raise InvalidInput("month must be from 1 to 12", field="month")


def _line_digest(lines: Sequence[StatementLine]) -> str:
    """sha256 of a month's lines in a canonical form (ids sorted; names left out: they may be
    corrected in the register without changing what is paid)."""
    canonical = "\n".join(
        f"{ln.id}|{ln.month}|{ln.care_unit}|{ln.kind}|{ln.quantity}|{ln.unit_amount}|{ln.amount}"
        for ln in sorted(lines, key=lambda ln: ln.id)
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def statement(
    session: AsyncSession,
    year: int,
    month: int | None = None,
    *,
    scope: Scope = EVERYTHING,
) -> ReimbursementStatement:
    """The statement for the months of calendar ``year`` (or one ``month``): its lines, the
    totals per unit and month, per month and in all, and each month's closing."""
    _check_period(year, month)
    first = _month_start(year, month or 1)
    last = _month_start(year, month or 12)
    range_start = clock.start_of_day(first)
    range_end = clock.start_of_day(_next_month(last))
    params: dict[str, Any] = {
        "range_start": range_start,
        "range_end": range_end,
        "first_month": first,
        "last_month": last,
        "units": scope.unit_ids,
        "year": year,
        "with_grant": first.month == 1,
    }
    await session.execute(NO_JIT)
    rows = (await session.execute(text(_STATEMENT), params)).mappings().all()
    # Validated in one go by pydantic's core: a year of a large region has some 100,000 lines.
    lines = _LINES.validate_python(
        [
            # Swedish time, as the month of the line is decided.
            {**r, "event_at": clock.local(r["event_at"]) if r["event_at"] else None}
            for r in rows
            if r["g_line"] == 0
        ]
    )
    totals = [
        StatementTotal(
            month=r["month"] if r["g_month"] == 0 else None,
            care_unit=r["care_unit"] if r["g_unit"] == 0 else None,
            care_unit_name=r["care_unit_name"] if r["g_unit"] == 0 else None,
            lines=r["lines"],
            amount=r["amount"],
        )
        for r in rows
        if r["g_line"] == 1
    ]
    months = await _month_states(session, first, last, lines if scope.everything else None)
    return ReimbursementStatement(
        year=year, month=month, care_units=scope.hsa_ids, months=months, lines=lines, totals=totals
    )


async def _month_states(
    session: AsyncSession, first: dt.date, last: dt.date, all_lines: Sequence[StatementLine] | None
) -> list[MonthState]:
    closings = {
        c.month: c
        for c in await session.scalars(
            select(ReimbursementClosing).where(ReimbursementClosing.month.between(first, last))
        )
    }
    states = []
    day = first
    while day <= last:
        closing = closings.get(day)
        unchanged: bool | None = None
        if closing is not None and all_lines is not None:
            month_lines = [ln for ln in all_lines if ln.month == _ym(day)]
            unchanged = _line_digest(month_lines) == closing.digest
            if not unchanged:
                # Only a change to data a closed month was derived from (a back-dated register
                # change, a programme year edited without a revision) can do this: say so loudly.
                log.error("reimbursement: closed month %s no longer gives what was closed", _ym(day))
        states.append(
            MonthState(
                month=_ym(day),
                closed_at=closing.closed_at if closing else None,
                closed_by=closing.closed_by if closing else None,
                unchanged_since_closed=unchanged,
            )
        )
        day = _next_month(day)
    return states


# --- Closing ------------------------------------------------------------------------------------

_EARLIER_OPEN = text("""
SELECT min(month) FROM (
  SELECT DISTINCT date_trunc('month', e.at AT TIME ZONE 'Europe/Stockholm')::date AS month
  FROM result_events e
  WHERE e.kind IN ('completed', 'retracted') AND e.at < :before
  UNION
  SELECT make_date(py.year, 1, 1) FROM programme_years py
  WHERE py.start_grant > 0 AND make_date(py.year, 1, 1) < CAST(:month AS date)
) m
WHERE m.month < CAST(:month AS date)
  AND NOT EXISTS (SELECT 1 FROM reimbursement_closings c WHERE c.month = m.month)
""")


async def close_month(
    session: AsyncSession, year: int, month: int, *, actor: str, at: dt.datetime | None = None
) -> ClosedMonth:
    """Close (report) a month: 409 ``month-not-ended`` before it has ended (Swedish time),
    ``month-closed`` when it is closed, ``earlier-month-open`` when an earlier month with events
    is open. Records the month's line count, total and digest."""
    _check_period(year, month)
    at = at or clock.now()
    first = _month_start(year, month)
    if at < clock.start_of_day(_next_month(first)):
        raise MonthNotEnded(f"{_ym(first)} has not ended; it can be closed from {_ym(_next_month(first))}-01")
    # One close at a time; and no result event may be written while we look (SHARE waits for
    # the writers in flight to commit, and holds new ones until we commit), so every event
    # recorded after this close has an id above the one kept here.
    await session.execute(text("LOCK TABLE reimbursement_closings IN EXCLUSIVE MODE"))
    await session.execute(text("LOCK TABLE result_events IN SHARE MODE"))
    existing = await session.get(ReimbursementClosing, first)
    if existing is not None:
        raise MonthClosed(
            f"{_ym(first)} was closed at {existing.closed_at.isoformat()} by {existing.closed_by}"
        )
    earlier = await session.scalar(_EARLIER_OPEN, {"month": first, "before": clock.start_of_day(first)})
    if earlier is not None:
        raise EarlierMonthOpen(f"close {_ym(earlier)} first: months are closed in order")
    last_event_id = int(await session.scalar(text("SELECT coalesce(max(id), 0) FROM result_events")) or 0)
    computed = await statement(session, year, month)
    total = sum((ln.amount for ln in computed.lines), Decimal("0.00"))
    closing = ReimbursementClosing(
        month=first,
        closed_at=at,
        closed_by=actor,
        last_event_id=last_event_id,
        lines=len(computed.lines),
        total=total,
        digest=_line_digest(computed.lines),
    )
    session.add(closing)
    await session.flush()
    return ClosedMonth(
        month=_ym(first),
        closed_at=closing.closed_at,
        closed_by=actor,
        lines=closing.lines,
        total=total.quantize(CENTS),
        digest=closing.digest,
    )
