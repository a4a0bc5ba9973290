"""Bookable times: publishing (explicit or from a weekly template), listing and withdrawing.

Publishing is set-based and idempotent: a time already published for the same unit, resource
and start is left as it is (counted as ``already_published``); a withdrawn one is published
again. A time that overlaps another time of the same resource is refused with the index of the
offending slot, before anything is written. Publishing for one unit takes a transaction-level
advisory lock so two publishers of the same unit take turns and the overlap check holds.

Withdrawing and booking both lock the slot row, so a withdrawal and a booking of the same time
serialise: either the booking sees the slot withdrawn, or the withdrawal sees the booking
(``held_by``) and is refused with 409 ``slot-booked``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import holidays
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.booking.schemas import (
    WEEKDAYS,
    PublishResult,
    SkippedDay,
    SlotIn,
    SlotOut,
    SlotState,
    WeeklyTemplate,
)
from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.core.http import Page, decode_time_cursor, time_page

# Public holidays, and the de facto ones on which centres are closed (Midsummer Eve, Christmas
# Eve, New Year's Eve). Sundays are not "holidays" here: a template says which weekdays it uses.
HOLIDAY_CATEGORIES = ("public", "de_facto")


class SlotNotFound(NotFound):
    code = "slot-not-found"


class SlotBooked(Conflict):
    code = "slot-booked"


class SlotOverlaps(Conflict):
    code = "slot-overlaps"


class TemplateEmpty(InvalidInput):
    code = "template-empty"


@dataclass(frozen=True, slots=True)
class NewSlot:
    starts_at: datetime
    ends_at: datetime
    resource: str


@lru_cache(maxsize=16)
def swedish_holidays(year: int) -> dict[date, str]:
    """Swedish public and de facto holidays of ``year``, named in Swedish."""
    found = holidays.country_holidays(
        "SE", years=year, language="sv", categories=HOLIDAY_CATEGORIES, include_sundays=False
    )
    return dict(found.items())


def holiday_name(day: date) -> str | None:
    return swedish_holidays(day.year).get(day)


def _days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def expand_template(template: WeeklyTemplate) -> tuple[list[NewSlot], list[SkippedDay]]:
    """The times a weekly template gives, and the days it skipped (holidays, and the rare day
    whose first time falls in the hour skipped when summer time starts)."""
    wanted = {WEEKDAYS.index(d) for d in template.weekdays}
    talk = timedelta(minutes=template.talk_minutes)
    step = talk + timedelta(minutes=template.gap_minutes)
    slots: list[NewSlot] = []
    skipped: list[SkippedDay] = []
    for day in _days(template.first_day, template.last_day):
        if day.weekday() not in wanted:
            continue
        name = holiday_name(day)
        if name is not None:
            skipped.append(SkippedDay(date=day, reason=name))
            continue
        start = datetime.combine(day, template.day_starts)
        end_of_day = datetime.combine(day, template.day_ends)
        while start + talk <= end_of_day:
            # Wall-clock arithmetic, then localised: 08:00 stays 08:00 across a DST change.
            begins = clock.wall_clock(day, start.time())
            ends = clock.wall_clock(day, (start + talk).time())
            if begins is None or ends is None:
                skipped.append(SkippedDay(date=day, reason="summer time starts: the hour does not exist"))
                break
            slots.append(NewSlot(begins, ends, template.resource))
            start += step
    return slots, skipped


def _explicit(slots: Sequence[SlotIn]) -> list[NewSlot]:
    return [NewSlot(s.starts_at, s.ends_at, s.resource) for s in slots]


def _check_not_overlapping(slots: Sequence[NewSlot], field: str) -> None:
    """Refuse a request whose own times overlap (same resource); identical times are one."""
    order = sorted(range(len(slots)), key=lambda i: (slots[i].resource, slots[i].starts_at))
    for a, b in itertools.pairwise(order):
        first, second = slots[a], slots[b]
        if first.resource != second.resource or first == second:
            continue
        if second.starts_at < first.ends_at:
            raise SlotOverlaps(
                f"{field}/{b} ({second.starts_at.isoformat()}) overlaps {field}/{a} "
                f"({first.starts_at.isoformat()}-{first.ends_at.isoformat()})",
                field=f"{field}/{b}",
            )


_OVERLAPPING_EXISTING = text("""
SELECT v.ord, s.id, s.starts_at, s.ends_at
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), CAST(:resources AS text[]))
     WITH ORDINALITY AS v(starts_at, ends_at, resource, ord)
JOIN slots s ON s.care_unit_id = :unit AND s.resource = v.resource AND s.withdrawn_at IS NULL
 AND s.starts_at < v.ends_at AND s.ends_at > v.starts_at
 AND NOT (s.starts_at = v.starts_at AND s.ends_at = v.ends_at)
ORDER BY v.ord
LIMIT 1
""")

# A withdrawn time published again is open again; an open one is left as it was.
_INSERT = text("""
INSERT INTO slots AS s (care_unit_id, starts_at, ends_at, resource, published_by, published_at)
SELECT DISTINCT CAST(:unit AS bigint), v.starts_at, v.ends_at, v.resource, CAST(:actor AS text),
       CAST(:now AS timestamptz)
FROM unnest(CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]), CAST(:resources AS text[]))
     AS v(starts_at, ends_at, resource)
ON CONFLICT (care_unit_id, resource, starts_at) DO UPDATE
SET withdrawn_at = NULL, withdrawn_by = NULL, ends_at = EXCLUDED.ends_at,
    published_at = EXCLUDED.published_at, published_by = EXCLUDED.published_by
WHERE s.withdrawn_at IS NOT NULL
RETURNING (xmax = 0) AS inserted
""")


async def _publish(
    session: AsyncSession, unit_id: int, slots: list[NewSlot], *, actor: str, field: str
) -> PublishResult:
    _check_not_overlapping(slots, field)
    if not slots:
        return PublishResult(created=0, already_published=0, reopened=0)
    params: dict[str, Any] = {
        "unit": unit_id,
        "actor": actor,
        "starts": [s.starts_at for s in slots],
        "ends": [s.ends_at for s in slots],
        "resources": [s.resource for s in slots],
    }
    await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('slots'), :unit)"), {"unit": unit_id})
    clash = (await session.execute(_OVERLAPPING_EXISTING, params)).first()
    if clash is not None:
        index = clash.ord - 1
        raise SlotOverlaps(
            f"{field}/{index} ({slots[index].starts_at.isoformat()}) overlaps the published time "
            f"{clash.id} ({clock.local(clash.starts_at).isoformat()}"
            f"-{clock.local(clash.ends_at).isoformat()})",
            field=f"{field}/{index}",
            slot_id=clash.id,
        )
    rows = (await session.execute(_INSERT, {**params, "now": clock.now()})).all()
    created = sum(1 for r in rows if r.inserted)
    reopened = len(rows) - created
    distinct = len(set(slots))
    starts = sorted(s.starts_at for s in slots)
    return PublishResult(
        created=created,
        already_published=distinct - len(rows),
        reopened=reopened,
        first_starts_at=clock.local(starts[0]),
        last_starts_at=clock.local(starts[-1]),
    )


async def publish_slots(
    session: AsyncSession, unit_id: int, slots: Sequence[SlotIn], *, actor: str
) -> PublishResult:
    """Publish explicit times (see the module docstring)."""
    return await _publish(session, unit_id, _explicit(slots), actor=actor, field="slots")


async def publish_template(
    session: AsyncSession, unit_id: int, template: WeeklyTemplate, *, actor: str
) -> PublishResult:
    """Publish the times of a weekly template, skipping holidays (see the module docstring)."""
    slots, skipped = expand_template(template)
    if not slots:
        raise TemplateEmpty(
            "the template gives no times: no listed weekday in the range, or every one is a "
            "holiday, or the day is shorter than one talk",
            skipped_days=[s.model_dump(mode="json") for s in skipped],
        )
    result = await _publish(session, unit_id, slots, actor=actor, field="template")
    result.skipped_days = skipped
    return result


# A slot's state follows from its own row: ``held_by`` names the appointment holding it.
_STATE = """CASE WHEN s.withdrawn_at IS NOT NULL THEN 'withdrawn'
                 WHEN s.held_by IS NOT NULL THEN 'booked' ELSE 'free' END"""

_SELECT = f"""
SELECT s.id, u.hsa_id, s.starts_at, s.ends_at, s.resource, {_STATE} AS state, s.held_by AS appointment_id
FROM slots s
JOIN care_units u ON u.id = s.care_unit_id
"""

_LIST = (
    _SELECT
    + """
WHERE s.care_unit_id = :unit AND s.starts_at >= :start AND s.starts_at < :end
  AND (CAST(:after_start AS timestamptz) IS NULL OR (s.starts_at, s.id) > (:after_start, :after_id))
"""
)


def _slot_out(row: Any) -> SlotOut:
    return SlotOut(
        id=row.id,
        care_unit=row.hsa_id,
        starts_at=clock.local(row.starts_at),
        ends_at=clock.local(row.ends_at),
        resource=row.resource,
        status=row.state,
        appointment_id=row.appointment_id,
    )


async def list_slots(
    session: AsyncSession,
    unit_id: int,
    *,
    first_day: date,
    last_day: date,
    state: SlotState | None,
    limit: int,
    cursor: str | None,
) -> Page[SlotOut]:
    """A unit's times from ``first_day`` to ``last_day`` (Swedish days), by start, paged."""
    if last_day < first_day:
        raise InvalidInput("last_day is before first_day", field="last_day")
    after_start, after_id = decode_time_cursor(cursor)
    sql = (
        _LIST
        + (f" AND {_STATE} = :state" if state is not None else "")
        + " ORDER BY s.starts_at, s.id LIMIT :limit"
    )
    rows = (
        await session.execute(
            text(sql),
            {
                "unit": unit_id,
                "start": clock.start_of_day(first_day),
                "end": clock.end_of_day(last_day),
                "after_start": after_start,
                "after_id": after_id,
                "state": state,
                "limit": limit + 1,
            },
        )
    ).all()
    page, next_cursor = time_page(rows, limit)
    items = [_slot_out(r) for r in page]
    return Page[SlotOut](items=items, next_cursor=next_cursor)


async def get_slot(session: AsyncSession, unit_id: int, slot_id: int) -> SlotOut:
    row = (
        await session.execute(
            text(_SELECT + " WHERE s.id = :id AND s.care_unit_id = :unit"),
            {"id": slot_id, "unit": unit_id},
        )
    ).first()
    if row is None:
        raise SlotNotFound(f"the unit has no time {slot_id}")
    return _slot_out(row)


async def withdraw_slot(session: AsyncSession, unit_id: int, slot_id: int, *, actor: str) -> SlotOut:
    """Withdraw an unbooked time. 409 ``slot-booked`` while an appointment holds it (cancel that
    first: the resident is told). Withdrawing a withdrawn time changes nothing."""
    locked = (
        await session.execute(
            text(
                "SELECT id, withdrawn_at, held_by FROM slots "
                "WHERE id = :id AND care_unit_id = :unit FOR UPDATE"
            ),
            {"id": slot_id, "unit": unit_id},
        )
    ).first()
    if locked is None:
        raise SlotNotFound(f"the unit has no time {slot_id}")
    if locked.withdrawn_at is None:
        # Bookers lock the slot row too, so the locked row shows any booking that committed
        # while we waited for it.
        if locked.held_by is not None:
            status = (
                await session.execute(
                    text("SELECT status FROM appointments WHERE id = :id"), {"id": locked.held_by}
                )
            ).scalar_one()
            raise SlotBooked(
                f"the time is held by appointment {locked.held_by} ({status}); cancel it first, "
                "which tells the resident",
                appointment_id=locked.held_by,
            )
        await session.execute(
            text("UPDATE slots SET withdrawn_at = :now, withdrawn_by = :actor WHERE id = :id"),
            {"id": slot_id, "actor": actor, "now": clock.now()},
        )
    return await get_slot(session, unit_id, slot_id)
