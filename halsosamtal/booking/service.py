"""Appointments: the portal books, moves and cancels for its resident; the centre cancels and
records attendance. Every change appends to ``appointment_events`` and, where the invitation's
status changes, to ``invitation_events``, in the same transaction; the messages it causes are
rows in the outbox in that transaction too.

Rules where the issue leaves room, decided here:

- A planned invitation (its letter not yet sent) can be booked as well as an open one: a
  resident who heard of the programme need not wait for the letter. Booking cancels the
  invitation's unsent invitation and reminder messages.
- Cancelling (by the resident or the centre) re-opens the invitation; its reminders resume on
  their schedule. A no-show re-opens it too. An invitation booked before its letter went out
  goes back to planned instead, with its letter planned again.
- Declining a booked invitation cancels the booking first (the resident is told the time is
  cancelled), then declines.
- Attendance can be recorded once; recording the same outcome again answers the same, another
  outcome is a 409 ``attendance-recorded``. A no-show can be recorded once the time has begun;
  "attended" at any time (a talk held earlier than booked, when the resident came in anyway).
- A resident cannot cancel or move a time that has begun (409 ``appointment-started``): that
  would erase a no-show. The care unit can.
- Locks are taken invitation first, then appointment, then slot, in every path.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access.schemas import Principal
from halsosamtal.booking.schemas import (
    AppointmentDetail,
    AppointmentEventOut,
    AppointmentOut,
    CentreAppointmentOut,
    FreeSlot,
)
from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.core.http import Page, decode_time_cursor, time_page
from halsosamtal.invitations import lifecycle, validity
from halsosamtal.invitations.lifecycle import InvitationClosed, NoInvitation
from halsosamtal.residents.lookup import requested_personnummer
from halsosamtal.residents.personnummer import format_long


class AppointmentNotFound(NotFound):
    code = "appointment-not-found"


class AlreadyBooked(Conflict):
    code = "already-booked"


class AppointmentNotBooked(Conflict):
    code = "appointment-not-booked"


class AttendanceRecorded(Conflict):
    code = "attendance-recorded"


class AppointmentStarted(Conflict):
    code = "appointment-started"


class AppointmentNotStarted(Conflict):
    code = "appointment-not-started"


class SlotTaken(Conflict):
    code = "slot-taken"
    title = "The time is taken"


class SlotWithdrawn(Conflict):
    code = "slot-withdrawn"


class AppointmentOfOtherInvitation(InvalidInput):
    code = "appointment-of-other-invitation"


class SlotNotBookable(InvalidInput):
    """The time exists but breaks a booking rule; ``code`` says which."""


class SlotAtOtherUnit(SlotNotBookable):
    code = "slot-at-other-unit"


class SlotTooSoon(SlotNotBookable):
    code = "slot-too-soon"


class SlotAfterValidUntil(SlotNotBookable):
    code = "slot-after-valid-until"


class SlotBeforeValidity(SlotNotBookable):
    code = "slot-before-valid-from"


class NoSuchSlot(NotFound):
    code = "slot-not-found"


BOOKING_MESSAGE_KINDS = ("booking_confirmation", "booking_moved", "appointment_reminder")


# --- Reading ------------------------------------------------------------------------------------

_APPOINTMENT = """
SELECT a.id, a.invitation_id, a.status, a.slot_id, a.booked_at, s.starts_at, s.ends_at, s.resource,
       s.care_unit_id, u.name AS unit_name, u.hsa_id, u.visiting_address AS unit_address,
       u.phone AS unit_phone, r.personnummer
FROM appointments a
JOIN slots s ON s.id = a.slot_id
JOIN care_units u ON u.id = s.care_unit_id
JOIN invitations i ON i.id = a.invitation_id
JOIN residents r ON r.id = i.resident_id
"""


def _fields(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "invitation_id": row.invitation_id,
        "status": row.status,
        "slot_id": row.slot_id,
        "starts_at": clock.local(row.starts_at),
        "ends_at": clock.local(row.ends_at),
        "resource": row.resource,
        "care_unit_name": row.unit_name,
        "care_unit": row.hsa_id,
        "care_unit_visiting_address": row.unit_address,
        "care_unit_phone": row.unit_phone,
        "booked_at": row.booked_at,
    }


async def _appointment_row(session: AsyncSession, appointment_id: int) -> Any:
    row = (await session.execute(text(_APPOINTMENT + " WHERE a.id = :id"), {"id": appointment_id})).first()
    if row is None:
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    return row


async def resident_view(session: AsyncSession, appointment_id: int) -> AppointmentOut:
    return AppointmentOut(**_fields(await _appointment_row(session, appointment_id)))


async def centre_view(session: AsyncSession, appointment_id: int, principal: Principal) -> AppointmentDetail:
    """An appointment with who is coming and its history; the unit's own clients and operators."""
    row = await _appointment_row(session, appointment_id)
    if not principal.may_act_for(row.care_unit_id):
        # Another unit's appointment is answered as if it did not exist: a client learns nothing
        # of who is booked elsewhere, nor where.
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    events = await session.execute(
        text(
            "SELECT from_status, to_status, slot_id, previous_slot_id, at, reason, actor "
            "FROM appointment_events WHERE appointment_id = :id ORDER BY id"
        ),
        {"id": appointment_id},
    )
    return AppointmentDetail(
        **_fields(row),
        personnummer=format_long(row.personnummer),
        events=[AppointmentEventOut(**e._mapping) for e in events],
    )


async def current_appointment(session: AsyncSession, invitation_id: int) -> AppointmentOut | None:
    row = (
        await session.execute(
            text(_APPOINTMENT + " WHERE a.invitation_id = :id AND a.status = 'booked'"), {"id": invitation_id}
        )
    ).first()
    return AppointmentOut(**_fields(row)) if row is not None else None


async def list_for_unit(
    session: AsyncSession,
    unit_id: int,
    *,
    first_day: date,
    last_day: date,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> Page[CentreAppointmentOut]:
    """A unit's appointments whose time is in the range, by time: who is coming."""
    if last_day < first_day:
        raise InvalidInput("last_day is before first_day", field="last_day")
    after_start, after_id = decode_time_cursor(cursor)
    sql = (
        _APPOINTMENT
        + " WHERE s.care_unit_id = :unit AND s.starts_at >= :start AND s.starts_at < :end"
        + " AND (CAST(:after_start AS timestamptz) IS NULL"
        + "      OR (s.starts_at, a.id) > (:after_start, :after_id))"
        + (" AND a.status = :status" if status is not None else "")
        + " ORDER BY s.starts_at, a.id LIMIT :limit"
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
                "status": status,
                "limit": limit + 1,
            },
        )
    ).all()
    page, next_cursor = time_page(rows, limit)
    items = [CentreAppointmentOut(**_fields(r), personnummer=format_long(r.personnummer)) for r in page]
    return Page[CentreAppointmentOut](items=items, next_cursor=next_cursor)


# --- The resident's invitation and the time they pick -------------------------------------------

_INVITATION = """
SELECT i.id, i.status, i.resident_id, i.care_unit_id, i.valid_until, i.year,
       coalesce(p.booking_lead_days, 7) AS lead_days,
       coalesce(p.appointment_reminder_days, 2) AS reminder_days
FROM invitations i
JOIN residents r ON r.id = i.resident_id
LEFT JOIN programme_years p ON p.year = i.year
"""


async def _resident_invitation(
    session: AsyncSession, personnummer: str, invitation_id: int, *, lock: bool
) -> Any:
    sql = _INVITATION + " WHERE i.id = :id AND r.personnummer = :pnr" + (" FOR UPDATE OF i" if lock else "")
    row = (
        await session.execute(text(sql), {"id": invitation_id, "pnr": requested_personnummer(personnummer)})
    ).first()
    if row is None:
        # Whether or not the invitation exists: a portal learns nothing about other residents.
        raise NoInvitation("the resident has no such invitation")
    return row


def _bookable_window(invitation: Any) -> tuple[datetime, datetime]:
    """The first and (exclusive) last moment a time may start for this invitation: after the
    lead time, and within the invitation's window (its programme year's first day .. its last
    valid day), the same window in which a result for the talk is accepted."""
    first, last = validity.window(invitation.year, invitation.valid_until)
    return max(clock.now() + timedelta(days=invitation.lead_days), first), last


def _check_open(invitation: Any) -> None:
    if invitation.status not in ("planned", "open"):
        raise InvitationClosed(
            f"the invitation is {invitation.status}; only a planned or open invitation can be booked",
            invitation_status=invitation.status,
        )
    if invitation.valid_until < clock.local_today():
        raise InvitationClosed(
            f"the invitation was valid until {invitation.valid_until.isoformat()}",
            invitation_status="expired",
        )


async def _bookable_slot(session: AsyncSession, slot_id: int, invitation: Any) -> Any:
    """The slot, locked (bookers of one time take turns; a withdrawal waits), if the invitation
    may book it; else the refusal that says why."""
    slot = (
        await session.execute(
            text(
                "SELECT id, care_unit_id, starts_at, ends_at, withdrawn_at, held_by FROM slots "
                "WHERE id = :id FOR UPDATE"
            ),
            {"id": slot_id},
        )
    ).first()
    if slot is None:
        raise NoSuchSlot(f"no time {slot_id}", field="slot_id")
    if slot.care_unit_id != invitation.care_unit_id:
        raise SlotAtOtherUnit(
            "the time is at another care unit than the one that invited the resident", field="slot_id"
        )
    if slot.withdrawn_at is not None:
        raise SlotWithdrawn("the care unit has withdrawn this time", field="slot_id")
    if slot.held_by is not None:
        raise SlotTaken("someone else has booked this time; pick another", field="slot_id")
    latest = _bookable_window(invitation)[1]
    if slot.starts_at < (earliest := clock.now() + timedelta(days=invitation.lead_days)):
        raise SlotTooSoon(
            f"a time must start at least {invitation.lead_days} days from now (so that lab samples "
            f"can be taken first); the first bookable moment is {clock.local(earliest).isoformat()}",
            field="slot_id",
        )
    if slot.starts_at < validity.window(invitation.year, invitation.valid_until)[0]:
        raise SlotBeforeValidity(
            f"the time is before the invitation's programme year {invitation.year} begins; it can "
            f"be used {validity.describe(invitation.year, invitation.valid_until)}",
            field="slot_id",
        )
    if slot.starts_at >= latest:
        raise SlotAfterValidUntil(
            f"the time is after the invitation's last valid day, {invitation.valid_until.isoformat()}",
            field="slot_id",
        )
    return slot


async def search_free(
    session: AsyncSession,
    personnummer: str,
    invitation_id: int,
    *,
    first_day: date | None,
    last_day: date | None,
    limit: int,
    cursor: str | None,
) -> Page[FreeSlot]:
    """Free times the resident may book for this invitation: at its unit, not before the lead
    time, before the invitation's last valid day, within the days asked for; by time."""
    invitation = await _resident_invitation(session, personnummer, invitation_id, lock=False)
    if invitation.status not in ("planned", "open", "booked"):
        raise InvitationClosed(
            f"the invitation is {invitation.status}; there is nothing to book",
            invitation_status=invitation.status,
        )
    if first_day is not None and last_day is not None and last_day < first_day:
        raise InvalidInput("last_day is before first_day", field="last_day")
    earliest, latest = _bookable_window(invitation)
    if first_day is not None:
        earliest = max(earliest, clock.start_of_day(first_day))
    if last_day is not None:
        latest = min(latest, clock.end_of_day(last_day))
    after_start, after_id = decode_time_cursor(cursor)
    rows = (
        await session.execute(
            text("""
SELECT s.id, s.starts_at, s.ends_at, s.resource, u.name AS unit_name, u.hsa_id,
  u.visiting_address AS unit_address, u.phone AS unit_phone
FROM slots s JOIN care_units u ON u.id = s.care_unit_id
WHERE s.care_unit_id = :unit AND s.withdrawn_at IS NULL AND s.held_by IS NULL
  AND s.starts_at >= :earliest AND s.starts_at < :latest
  AND (CAST(:after_start AS timestamptz) IS NULL OR (s.starts_at, s.id) > (:after_start, :after_id))
ORDER BY s.starts_at, s.id
LIMIT :limit
"""),
            {
                "unit": invitation.care_unit_id,
                "earliest": earliest,
                "latest": latest,
                "after_start": after_start,
                "after_id": after_id,
                "limit": limit + 1,
            },
        )
    ).all()
    page, next_cursor = time_page(rows, limit)
    items = [
        FreeSlot(
            id=r.id,
            starts_at=clock.local(r.starts_at),
            ends_at=clock.local(r.ends_at),
            resource=r.resource,
            care_unit_name=r.unit_name,
            care_unit=r.hsa_id,
            care_unit_visiting_address=r.unit_address,
            care_unit_phone=r.unit_phone,
        )
        for r in page
    ]
    return Page[FreeSlot](items=items, next_cursor=next_cursor)


# --- Changes ------------------------------------------------------------------------------------


async def _appointment_event(
    session: AsyncSession,
    appointment_id: int,
    from_status: str | None,
    to_status: str,
    slot_id: int,
    *,
    reason: str,
    actor: str,
    previous_slot_id: int | None = None,
) -> None:
    await session.execute(
        text(
            "INSERT INTO appointment_events "
            "(appointment_id, from_status, to_status, slot_id, previous_slot_id, reason, actor, at) "
            "VALUES (:id, :from_status, :to_status, :slot, :previous, :reason, :actor, :now)"
        ),
        {
            "now": clock.now(),
            "id": appointment_id,
            "from_status": from_status,
            "to_status": to_status,
            "slot": slot_id,
            "previous": previous_slot_id,
            "reason": reason,
            "actor": actor,
        },
    )


async def _cancel_messages(session: AsyncSession, *, appointment_id: int, kinds: tuple[str, ...]) -> None:
    await session.execute(
        text(
            "UPDATE messages SET status = 'cancelled' WHERE appointment_id = :id "
            "AND kind = ANY(CAST(:kinds AS text[])) AND status IN ('planned', 'queued')"
        ),
        {"id": appointment_id, "kinds": list(kinds)},
    )


async def _queue_message(
    session: AsyncSession,
    *,
    kind: str,
    resident_id: int,
    invitation_id: int,
    appointment_id: int,
    send_on: date,
    appointment_at: datetime,
    previous_appointment_at: datetime | None = None,
) -> None:
    await session.execute(
        text(
            "INSERT INTO messages (resident_id, invitation_id, appointment_id, kind, send_on, "
            "appointment_at, previous_appointment_at, created_at) VALUES (:resident, :invitation, "
            ":appointment, :kind, :send_on, :at, :previous, :now)"
        ),
        {
            "now": clock.now(),
            "resident": resident_id,
            "invitation": invitation_id,
            "appointment": appointment_id,
            "kind": kind,
            "send_on": send_on,
            "at": appointment_at,
            "previous": previous_appointment_at,
        },
    )


async def _plan_reminder(
    session: AsyncSession, invitation: Any, appointment_id: int, starts_at: datetime
) -> None:
    """The appointment reminder, ``appointment_reminder_days`` before the time; none when that
    day is today or past (the confirmation has just gone out)."""
    send_on = clock.local(starts_at).date() - timedelta(days=invitation.reminder_days)
    if send_on <= clock.local_today():
        return
    await _queue_message(
        session,
        kind="appointment_reminder",
        resident_id=invitation.resident_id,
        invitation_id=invitation.id,
        appointment_id=appointment_id,
        send_on=send_on,
        appointment_at=starts_at,
    )


async def book(
    session: AsyncSession, personnummer: str, invitation_id: int, slot_id: int, *, actor: str
) -> AppointmentOut:
    """Book a time for the resident's planned or open invitation.

    Exactly one of many concurrent requests for one time wins: the insert meets the partial
    unique index on the slot and the losers get 409 ``slot-taken``.
    """
    invitation = await _resident_invitation(session, personnummer, invitation_id, lock=True)
    if invitation.status == "booked":
        current = await current_appointment(session, invitation_id)
        raise AlreadyBooked(
            "the invitation has a booked time already; move or cancel it",
            appointment_id=current.id if current else None,
        )
    _check_open(invitation)
    slot = await _bookable_slot(session, slot_id, invitation)
    appointment_id = (
        await session.execute(
            text(
                "INSERT INTO appointments (invitation_id, slot_id, booked_by, booked_at, updated_at) "
                "VALUES (:invitation, :slot, :actor, :now, :now) "
                "ON CONFLICT DO NOTHING RETURNING id"
            ),
            {"invitation": invitation_id, "slot": slot_id, "actor": actor, "now": clock.now()},
        )
    ).scalar_one_or_none()
    if appointment_id is None:
        raise SlotTaken("someone else has booked this time; pick another", field="slot_id")
    await _hold(session, slot_id, appointment_id)
    await _appointment_event(session, appointment_id, None, "booked", slot_id, reason="booked", actor=actor)
    when = clock.local(slot.starts_at).strftime("%Y-%m-%d %H:%M")
    await lifecycle.change_status(
        session, invitation_id, invitation.status, "booked", reason=f"booked {when}", actor=actor
    )
    # A booking stops the invitation's own messages: its reminders, and its letter if unsent.
    await session.execute(
        text(
            "UPDATE messages SET status = 'cancelled' WHERE invitation_id = :id "
            "AND kind IN ('invitation', 'reminder') AND status IN ('planned', 'queued')"
        ),
        {"id": invitation_id},
    )
    await _queue_message(
        session,
        kind="booking_confirmation",
        resident_id=invitation.resident_id,
        invitation_id=invitation_id,
        appointment_id=appointment_id,
        send_on=clock.local_today(),
        appointment_at=slot.starts_at,
    )
    await _plan_reminder(session, invitation, appointment_id, slot.starts_at)
    return await resident_view(session, appointment_id)


async def lock_invitation_of(session: AsyncSession, appointment_id: int) -> None:
    """Lock the appointment's invitation. Every change locks the invitation first, then its
    appointment, then a slot: the same order everywhere, so concurrent changes of one resident's
    booking wait for each other instead of deadlocking. (An appointment's invitation never
    changes, so locking it through the appointment is safe.)"""
    await session.execute(
        text(
            "SELECT i.id FROM invitations i JOIN appointments a ON a.invitation_id = i.id "
            "WHERE a.id = :id FOR UPDATE OF i"
        ),
        {"id": appointment_id},
    )


def _check_not_started(appointment: Any) -> None:
    """A resident cannot cancel or move a time that has begun: it is attended or a no-show."""
    if appointment.starts_at <= clock.now():
        raise AppointmentStarted(
            f"the time began at {clock.local(appointment.starts_at).isoformat()}; it can no longer be "
            "cancelled or moved here (contact the care unit)"
        )


async def _resident_appointment(
    session: AsyncSession, personnummer: str, appointment_id: int, invitation_id: int | None = None
) -> Any:
    """The resident's own appointment, its invitation locked first; 404 otherwise. When the
    caller names the invitation too, it must be the appointment's (422 otherwise)."""
    await lock_invitation_of(session, appointment_id)
    row = (
        await session.execute(
            text(
                "SELECT a.id, a.status, a.slot_id, a.invitation_id, s.starts_at, i.resident_id "
                "FROM appointments a JOIN slots s ON s.id = a.slot_id "
                "JOIN invitations i ON i.id = a.invitation_id JOIN residents r ON r.id = i.resident_id "
                "WHERE a.id = :id AND r.personnummer = :pnr FOR UPDATE OF a"
            ),
            {"id": appointment_id, "pnr": requested_personnummer(personnummer)},
        )
    ).first()
    if row is None:
        raise AppointmentNotFound("the resident has no such appointment")
    if invitation_id is not None and invitation_id != row.invitation_id:
        raise AppointmentOfOtherInvitation(
            f"appointment {appointment_id} is for invitation {row.invitation_id}, not {invitation_id}",
            field="invitation_id",
        )
    return row


async def move(
    session: AsyncSession,
    personnummer: str,
    appointment_id: int,
    slot_id: int,
    *,
    actor: str,
    invitation_id: int | None = None,
) -> AppointmentOut:
    """Move a booked appointment to another time in one step: the old time is free and the new
    one held when this commits, or nothing changed (409 ``slot-taken``)."""
    appointment = await _resident_appointment(session, personnummer, appointment_id, invitation_id)
    if appointment.status != "booked":
        raise AppointmentNotBooked(
            f"the appointment is {appointment.status}; only a booked time can be moved"
        )
    _check_not_started(appointment)
    if appointment.slot_id == slot_id:
        return await resident_view(session, appointment_id)
    invitation = await _resident_invitation(session, personnummer, appointment.invitation_id, lock=False)
    # Both times, in id order: two residents swapping times take turns instead of deadlocking.
    await session.execute(
        text("SELECT id FROM slots WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR UPDATE"),
        {"ids": sorted((appointment.slot_id, slot_id))},
    )
    slot = await _bookable_slot(session, slot_id, invitation)
    try:
        async with session.begin_nested():
            await session.execute(
                text("UPDATE appointments SET slot_id = :slot, updated_at = :now WHERE id = :id"),
                {"id": appointment_id, "slot": slot_id, "now": clock.now()},
            )
    except IntegrityError as exc:
        raise SlotTaken("someone else has booked this time; pick another", field="slot_id") from exc
    await _release(session, appointment.slot_id, appointment_id)
    await _hold(session, slot_id, appointment_id)
    before = clock.local(appointment.starts_at).strftime("%Y-%m-%d %H:%M")
    after = clock.local(slot.starts_at).strftime("%Y-%m-%d %H:%M")
    await _appointment_event(
        session,
        appointment_id,
        "booked",
        "booked",
        slot_id,
        previous_slot_id=appointment.slot_id,
        reason=f"moved from {before} to {after}",
        actor=actor,
    )
    await _cancel_messages(session, appointment_id=appointment_id, kinds=BOOKING_MESSAGE_KINDS)
    await _queue_message(
        session,
        kind="booking_moved",
        resident_id=invitation.resident_id,
        invitation_id=invitation.id,
        appointment_id=appointment_id,
        send_on=clock.local_today(),
        appointment_at=slot.starts_at,
        previous_appointment_at=appointment.starts_at,
    )
    await _plan_reminder(session, invitation, appointment_id, slot.starts_at)
    return await resident_view(session, appointment_id)


async def reopen_invitation(
    session: AsyncSession, invitation_id: int, *, reason: str, actor: str, from_status: str = "booked"
) -> None:
    """A booked invitation whose time is gone is open again, so reminders resume. One booked
    before its letter went out goes back to planned, and its letter is planned again (booking
    cancelled it): otherwise the resident would never hear from the programme again."""
    sent_at = (
        await session.execute(text("SELECT sent_at FROM invitations WHERE id = :id"), {"id": invitation_id})
    ).scalar_one()
    if sent_at is not None:
        await lifecycle.change_status(session, invitation_id, from_status, "open", reason=reason, actor=actor)
        return
    await lifecycle.change_status(session, invitation_id, from_status, "planned", reason=reason, actor=actor)
    await session.execute(
        text(
            "INSERT INTO messages (resident_id, invitation_id, kind, send_on, created_at) "
            "SELECT i.resident_id, i.id, 'invitation', greatest(i.planned_send_on, CAST(:today AS date)), "
            "CAST(:now AS timestamptz) "
            "FROM invitations i WHERE i.id = :id AND NOT EXISTS ("
            "  SELECT 1 FROM messages m WHERE m.invitation_id = i.id AND m.kind = 'invitation' "
            "  AND m.status IN ('planned', 'queued', 'sending'))"
        ),
        {"id": invitation_id, "today": clock.local_today(), "now": clock.now()},
    )


async def _hold(session: AsyncSession, slot_id: int, appointment_id: int) -> None:
    await session.execute(
        text("UPDATE slots SET held_by = :appointment WHERE id = :id"),
        {"id": slot_id, "appointment": appointment_id},
    )


async def _release(session: AsyncSession, slot_id: int, appointment_id: int) -> None:
    await session.execute(
        text("UPDATE slots SET held_by = NULL WHERE id = :id AND held_by = :appointment"),
        {"id": slot_id, "appointment": appointment_id},
    )


async def _cancel(
    session: AsyncSession, appointment: Any, resident_id: int, *, reason: str, actor: str, notify: bool = True
) -> None:
    await session.execute(
        text("UPDATE appointments SET status = 'cancelled', updated_at = :now WHERE id = :id"),
        {"id": appointment.id, "now": clock.now()},
    )
    await _release(session, appointment.slot_id, appointment.id)
    await _appointment_event(
        session, appointment.id, "booked", "cancelled", appointment.slot_id, reason=reason, actor=actor
    )
    await reopen_invitation(
        session, appointment.invitation_id, reason=f"booking cancelled: {reason}", actor=actor
    )
    await _cancel_messages(session, appointment_id=appointment.id, kinds=BOOKING_MESSAGE_KINDS)
    if notify:
        await _queue_message(
            session,
            kind="booking_cancelled",
            resident_id=resident_id,
            invitation_id=appointment.invitation_id,
            appointment_id=appointment.id,
            send_on=clock.local_today(),
            appointment_at=appointment.starts_at,
        )


async def cancel_by_resident(
    session: AsyncSession,
    personnummer: str,
    appointment_id: int,
    *,
    actor: str,
    invitation_id: int | None = None,
) -> AppointmentOut:
    """The resident cancels their time: it is free at once, the invitation is open again, and a
    cancellation confirmation goes out. Cancelling a cancelled time answers the same."""
    appointment = await _resident_appointment(session, personnummer, appointment_id, invitation_id)
    if appointment.status == "booked":
        _check_not_started(appointment)
        await _cancel(
            session, appointment, appointment.resident_id, reason="cancelled by the resident", actor=actor
        )
    elif appointment.status != "cancelled":
        raise AppointmentNotBooked(f"the appointment is {appointment.status} and can no longer be cancelled")
    return await resident_view(session, appointment_id)


async def _centre_appointment(session: AsyncSession, appointment_id: int, principal: Principal) -> Any:
    await lock_invitation_of(session, appointment_id)
    row = (
        await session.execute(
            text(
                "SELECT a.id, a.status, a.slot_id, a.invitation_id, s.starts_at, s.care_unit_id, "
                "i.resident_id, i.status AS invitation_status, u.hsa_id "
                "FROM appointments a JOIN slots s ON s.id = a.slot_id "
                "JOIN care_units u ON u.id = s.care_unit_id "
                "JOIN invitations i ON i.id = a.invitation_id WHERE a.id = :id FOR UPDATE OF a"
            ),
            {"id": appointment_id},
        )
    ).first()
    if row is None or not principal.may_act_for(row.care_unit_id):
        # Another unit's appointment is answered as if it did not exist.
        raise AppointmentNotFound(f"no appointment {appointment_id}")
    return row


async def cancel_by_centre(
    session: AsyncSession, appointment_id: int, principal: Principal, *, reason: str
) -> AppointmentDetail:
    """The centre cancels a booked time (e.g. to withdraw it); the resident is told, and the
    invitation is open again so they can book another."""
    appointment = await _centre_appointment(session, appointment_id, principal)
    if appointment.status == "booked":
        await _cancel(
            session,
            appointment,
            appointment.resident_id,
            reason=f"cancelled by the care unit: {reason}",
            actor=principal.name,
        )
    elif appointment.status != "cancelled":
        raise AppointmentNotBooked(f"the appointment is {appointment.status} and can no longer be cancelled")
    return await centre_view(session, appointment_id, principal)


async def record_attendance(
    session: AsyncSession, appointment_id: int, outcome: str, principal: Principal
) -> AppointmentDetail:
    """Attended: the invitation is attended (completed when the result comes). No-show: the
    invitation is open again so the resident can book anew; the no-show stays on record."""
    appointment = await _centre_appointment(session, appointment_id, principal)
    if appointment.status == outcome:
        return await centre_view(session, appointment_id, principal)
    if appointment.status in ("attended", "no_show"):
        raise AttendanceRecorded(
            f"attendance is already recorded as {appointment.status}", recorded=appointment.status
        )
    if appointment.status != "booked":
        raise AppointmentNotBooked(f"the appointment is {appointment.status}; attendance needs a booked time")
    if outcome == "no_show" and appointment.starts_at > clock.now():
        raise AppointmentNotStarted(
            f"the time begins at {clock.local(appointment.starts_at).isoformat()}; a no-show can be "
            "recorded once it has begun"
        )
    await mark(session, appointment, outcome, actor=principal.name)
    return await centre_view(session, appointment_id, principal)


async def mark(
    session: AsyncSession,
    appointment: Any,
    outcome: str,
    *,
    actor: str,
    reason: str | None = None,
    change_invitation: bool = True,
) -> None:
    """Set a booked appointment (a locked row with id, slot_id, invitation_id, invitation_status)
    to attended or no_show, with the invitation's change unless the caller makes its own (a
    posted result completes the invitation)."""
    await session.execute(
        text("UPDATE appointments SET status = :status, updated_at = :now WHERE id = :id"),
        {"id": appointment.id, "status": outcome, "now": clock.now()},
    )
    words = reason or ("attended" if outcome == "attended" else "did not come")
    await _appointment_event(
        session, appointment.id, "booked", outcome, appointment.slot_id, reason=words, actor=actor
    )
    if change_invitation and appointment.invitation_status == "booked":
        if outcome == "attended":
            await lifecycle.change_status(
                session,
                appointment.invitation_id,
                "booked",
                "attended",
                reason="attended the talk",
                actor=actor,
            )
        else:
            await reopen_invitation(
                session, appointment.invitation_id, reason="no-show: may book again", actor=actor
            )
    await _cancel_messages(session, appointment_id=appointment.id, kinds=("appointment_reminder",))


async def restore_booking(session: AsyncSession, invitation_id: int, *, reason: str, actor: str) -> bool:
    """After a retracted result: an appointment it marked attended whose time has not begun is
    booked again (with its reminder), and the invitation with it. The caller holds the
    invitation's lock. Returns whether a booking was restored."""
    row = (
        await session.execute(
            text(
                "SELECT a.id, a.slot_id, s.starts_at FROM appointments a JOIN slots s ON s.id = a.slot_id "
                "WHERE a.invitation_id = :id AND a.status = 'attended' AND s.starts_at > :now "
                "ORDER BY s.starts_at LIMIT 1 FOR UPDATE OF a"
            ),
            {"id": invitation_id, "now": clock.now()},
        )
    ).first()
    if row is None:
        return False
    await session.execute(
        text("UPDATE appointments SET status = 'booked', updated_at = :now WHERE id = :id"),
        {"id": row.id, "now": clock.now()},
    )
    await _appointment_event(session, row.id, "attended", "booked", row.slot_id, reason=reason, actor=actor)
    invitation = (await session.execute(text(_INVITATION + " WHERE i.id = :id"), {"id": invitation_id})).one()
    await lifecycle.change_status(
        session, invitation_id, invitation.status, "booked", reason=reason, actor=actor
    )
    await _plan_reminder(session, invitation, row.id, row.starts_at)
    return True


async def cancel_for_decline(
    session: AsyncSession, personnummer: str, invitation_id: int, *, actor: str
) -> None:
    """Before the resident's invitation is declined: cancel its booked time, if any (the time is
    freed and the resident told). 404 ``no-invitation`` when it is not theirs."""
    invitation = await _resident_invitation(session, personnummer, invitation_id, lock=True)
    if invitation.status != "booked":
        return
    row = (
        await session.execute(
            text(
                "SELECT a.id, a.status, a.slot_id, a.invitation_id, s.starts_at "
                "FROM appointments a JOIN slots s ON s.id = a.slot_id "
                "WHERE a.invitation_id = :id AND a.status = 'booked' FOR UPDATE OF a"
            ),
            {"id": invitation_id},
        )
    ).first()
    if row is not None:
        await _cancel(
            session, row, invitation.resident_id, reason="the resident declined the invitation", actor=actor
        )
