"""What happens to an invitation after it is created: reminders, expiry, withdrawal, listing
moves, and the resident's own view and decline.

Every status change appends an ``invitation_events`` row (from, to, when, why, who) in the same
statement that makes it, and cancels the invitation's planned and queued messages when the
invitation closes, so nothing further is sent. All of it is set-based SQL; the functions that
take a session never commit, and the ``*_all`` functions (for jobs and the CLI) run in chunks
of one transaction each.

Rules where the issue leaves room, decided here:

* **Reminders.** ``reminder_days`` count from the day the invitation was sent: with ``[28, 56]``
  reminder 1 is due 28 days and reminder 2 is due 56 days after ``sent_at`` (Swedish dates).
  ``sent_at`` is set when the invitation message is released, i.e. queued for delivery, which
  follows within minutes (a letter is printed that day).
  An invitation gets the next reminder only while it is ``open`` (not booked, declined,
  withdrawn, expired or completed), still valid, and at most one per run; after a missed day
  the next reminder also keeps its spacing from the last message (reminder 2 no sooner than
  56 - 28 days after reminder 1). ``reminders_sent`` is bumped in the same statement that
  creates the message, so a second run for the same day finds nothing due and there are never
  more reminders than configured. Reminders are created ``planned`` for the day and released
  by the same run, through the same code as invitations (channel, templates).
* **Expiry** uses the invitation's own ``valid_until`` (copied from the year when it was
  created, and the date its letter gives): the day after it, planned and open invitations
  become ``expired``.
* **Withdrawal.** A resident who died, emigrated or moved out of the region on or before the
  day: their planned and open invitations are ``withdrawn`` (the reason says which), and every
  planned or queued message to them is cancelled, whatever invitation it belongs to.
* **Listing moves.** Before booking (planned or open), an invitation follows the resident's
  listing to another participating unit: ``care_unit_id`` changes and a history row records
  it with the status unchanged (from = to) and the reason ``listing moved from A to B``.
  Listed at a non-participating unit, or no longer listed in the region: the programme invites
  through the listing unit, so the invitation is ``withdrawn`` with that reason (a unit that
  joins later invites its residents itself). Booked invitations stay where they were booked.
* **Decline** from the portal: planned or open -> ``declined``; declining an invitation that is
  already declined answers with it unchanged (a portal retrying after a network error gets the
  same answer); any other status is 409 ``invitation-closed``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.clock import moment
from halsosamtal.core.database import session_scope
from halsosamtal.core.errors import Conflict, NotFound
from halsosamtal.core.http import LocalTime
from halsosamtal.core.settings import Settings
from halsosamtal.invitations.models import Invitation, InvitationEvent
from halsosamtal.invitations.release import ReleaseResult, release_due
from halsosamtal.residents.lookup import requested_personnummer
from halsosamtal.residents.models import Resident
from halsosamtal.units.models import CareUnit

log = logging.getLogger("halsosamtal.invitations")

ACTIVE_STATUSES = ("planned", "open")
"""An invitation that can still be booked: its letter and reminders go out only then."""

CHUNK = 5000
"""Invitations changed per transaction by the ``*_all`` functions."""


class NoInvitation(NotFound):
    code = "no-invitation"
    title = "No invitation"


class InvitationNotFound(NotFound):
    code = "invitation-not-found"


class InvitationClosed(Conflict):
    code = "invitation-closed"
    title = "The invitation is closed"


# --- Reminders ----------------------------------------------------------------------------------

_CREATE_REMINDERS = text("""
WITH due AS (
  UPDATE invitations i
  SET reminders_sent = i.reminders_sent + 1, last_message_at = CAST(:at AS timestamptz),
      updated_at = CAST(:at AS timestamptz)
  FROM programme_years py
  WHERE py.year = i.year
    AND i.status = 'open'
    AND i.sent_at IS NOT NULL
    AND i.valid_until >= CAST(:as_of AS date)
    AND py.valid_until >= CAST(:as_of AS date)
    AND i.reminders_sent < cardinality(py.reminder_days)
    -- Reminder k is due reminder_days[k] days after the invitation was sent ...
    AND (i.sent_at AT TIME ZONE 'Europe/Stockholm')::date + py.reminder_days[i.reminders_sent + 1]
        <= CAST(:as_of AS date)
    -- ... and, after a missed run, no sooner than the configured gap after the last message.
    AND (i.last_message_at IS NULL
         OR (i.last_message_at AT TIME ZONE 'Europe/Stockholm')::date
            + (py.reminder_days[i.reminders_sent + 1] - coalesce(py.reminder_days[i.reminders_sent], 0))
            <= CAST(:as_of AS date))
  RETURNING i.id, i.resident_id, i.reminders_sent
), created AS (
  INSERT INTO messages (resident_id, invitation_id, kind, sequence, send_on, status, created_at)
  SELECT resident_id, id, 'reminder', reminders_sent, CAST(:as_of AS date), 'planned',
         CAST(:at AS timestamptz) FROM due
  RETURNING 1
)
SELECT count(*) FROM created
""")


async def create_due_reminders(session: AsyncSession, as_of: date, *, at: datetime | None = None) -> int:
    """Create the next reminder (planned, for ``as_of``) of every invitation due one; returns
    how many. One statement; a second call for the same day creates nothing."""
    result = await session.execute(_CREATE_REMINDERS, {"as_of": as_of, "at": at or moment(as_of)})
    return int(result.scalar_one())


@dataclass
class ReminderRun:
    """Reminders created by a run, and what the release that followed did."""

    created: int
    release: ReleaseResult

    def as_dict(self) -> dict[str, Any]:
        return {"created": self.created, "release": self.release.as_dict()}


async def run_reminders(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    as_of: date,
    *,
    actor: str = "worker",
) -> ReminderRun:
    """The daily reminder run for ``as_of``: create due reminders (one transaction), then release
    what is due that day (chunked), so the reminders are queued for delivery at once."""
    async with session_scope(sessionmaker) as session:
        created = await create_due_reminders(session, as_of)
    log.info("reminders as_of=%s created=%s", as_of, created)
    return ReminderRun(created, await release_due(sessionmaker, settings, as_of, actor=actor))


# --- Status changes in bulk ---------------------------------------------------------------------


@dataclass
class Changes:
    """Counts of a bulk change: invitations closed, invitations moved, messages cancelled."""

    closed: int = 0
    moved: int = 0
    cancelled: int = 0

    def add(self, other: Changes) -> None:
        self.closed += other.closed
        self.moved += other.moved
        self.cancelled += other.cancelled

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


# Each statement locks its target invitations (FOR UPDATE: a concurrent decline or booking is
# waited for and then re-checked), changes them, appends their history and cancels their
# messages, all at once. LIMIT NULL means no limit (one statement for the whole set).

_EXPIRE = text("""
WITH target AS (
  SELECT i.id, i.status, i.valid_until FROM invitations i
  WHERE i.status IN ('planned', 'open') AND i.valid_until < CAST(:as_of AS date)
  ORDER BY i.id LIMIT :limit
  FOR UPDATE
), changed AS (
  UPDATE invitations i SET status = 'expired', updated_at = CAST(:at AS timestamptz)
  FROM target t WHERE i.id = t.id
  RETURNING i.id, t.status AS from_status, t.valid_until
), events AS (
  INSERT INTO invitation_events (invitation_id, from_status, to_status, at, reason, actor)
  SELECT id, from_status, 'expired', CAST(:at AS timestamptz),
         format('valid until %s, which has passed', to_char(valid_until, 'YYYY-MM-DD')), :actor
  FROM changed
  RETURNING 1
), cancelled AS (
  UPDATE messages m SET status = 'cancelled'
  FROM changed c WHERE m.invitation_id = c.id AND m.status IN ('planned', 'queued')
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS closed, 0 AS moved, (SELECT count(*) FROM cancelled) AS cancelled
""")

_DEPARTED = """(r.deceased_on <= CAST(:as_of AS date) OR r.emigrated_on <= CAST(:as_of AS date)
               OR r.moved_out_on <= CAST(:as_of AS date))"""

_WITHDRAW_DEPARTED = text(f"""
WITH target AS (
  SELECT i.id, i.status,
         CASE WHEN r.deceased_on <= CAST(:as_of AS date)
                THEN format('the resident died on %s', to_char(r.deceased_on, 'YYYY-MM-DD'))
              WHEN r.emigrated_on <= CAST(:as_of AS date)
                THEN format('the resident emigrated on %s', to_char(r.emigrated_on, 'YYYY-MM-DD'))
              ELSE format('the resident moved out of the region on %s',
                          to_char(r.moved_out_on, 'YYYY-MM-DD'))
         END AS reason
  FROM invitations i JOIN residents r ON r.id = i.resident_id
  WHERE i.status IN ('planned', 'open', 'booked') AND {_DEPARTED}
  ORDER BY i.id LIMIT :limit
  FOR UPDATE OF i
), changed AS (
  UPDATE invitations i SET status = 'withdrawn', updated_at = CAST(:at AS timestamptz)
  FROM target t WHERE i.id = t.id
  RETURNING i.id, t.status AS from_status, t.reason
), events AS (
  INSERT INTO invitation_events (invitation_id, from_status, to_status, at, reason, actor)
  SELECT id, from_status, 'withdrawn', CAST(:at AS timestamptz), reason, :actor FROM changed
  RETURNING 1
), freed AS (
  -- A booked time is freed for someone else; nobody is told (the resident has left).
  UPDATE appointments a SET status = 'cancelled', updated_at = CAST(:at AS timestamptz)
  FROM changed c WHERE a.invitation_id = c.id AND a.status = 'booked'
  RETURNING a.id, a.slot_id, c.reason
), freed_events AS (
  INSERT INTO appointment_events (appointment_id, from_status, to_status, slot_id, at, reason, actor)
  SELECT id, 'booked', 'cancelled', slot_id, CAST(:at AS timestamptz), reason, :actor FROM freed
  RETURNING 1
), released AS (
  UPDATE slots s SET held_by = NULL FROM freed f WHERE s.id = f.slot_id AND s.held_by = f.id
  RETURNING 1
), cancelled AS (
  UPDATE messages m SET status = 'cancelled'
  FROM changed c WHERE m.invitation_id = c.id AND m.status IN ('planned', 'queued')
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed) AS closed, 0 AS moved, (SELECT count(*) FROM cancelled) AS cancelled
""")

# Whatever invitation (or none) a message to a departed resident belongs to, it is not sent.
_CANCEL_TO_DEPARTED = text(f"""
UPDATE messages m SET status = 'cancelled'
FROM residents r
WHERE r.id = m.resident_id AND m.status IN ('planned', 'queued') AND {_DEPARTED}
""")

_FOLLOW_LISTINGS = text(f"""
WITH target AS (
  SELECT i.id, i.status, r.care_unit_id AS to_unit, coalesce(nu.participating, false) AS follows,
         format('%s (%s)', ou.name, ou.hsa_id) AS from_name,
         format('%s (%s)', nu.name, nu.hsa_id) AS to_name, nu.id IS NULL AS unlisted
  FROM invitations i
  JOIN residents r ON r.id = i.resident_id
  JOIN care_units ou ON ou.id = i.care_unit_id
  LEFT JOIN care_units nu ON nu.id = r.care_unit_id
  WHERE i.status IN ('planned', 'open')
    AND r.care_unit_id IS DISTINCT FROM i.care_unit_id
    AND NOT coalesce({_DEPARTED}, false)
  ORDER BY i.id LIMIT :limit
  FOR UPDATE OF i
), changed AS (
  UPDATE invitations i
  SET care_unit_id = CASE WHEN t.follows THEN t.to_unit ELSE i.care_unit_id END,
      status = CASE WHEN t.follows THEN i.status ELSE 'withdrawn' END,
      updated_at = CAST(:at AS timestamptz)
  FROM target t WHERE i.id = t.id
  RETURNING i.id, t.status AS from_status, i.status AS to_status, t.follows,
    CASE WHEN t.follows THEN format('listing moved from %s to %s', t.from_name, t.to_name)
         WHEN t.unlisted THEN format('no longer listed at a care unit in the region (was %s)', t.from_name)
         ELSE format('listing moved from %s to %s, which does not take part', t.from_name, t.to_name)
    END AS reason
), events AS (
  INSERT INTO invitation_events (invitation_id, from_status, to_status, at, reason, actor)
  SELECT id, from_status, to_status, CAST(:at AS timestamptz), reason, :actor FROM changed
  RETURNING 1
), cancelled AS (
  UPDATE messages m SET status = 'cancelled'
  FROM changed c WHERE NOT c.follows AND m.invitation_id = c.id AND m.status IN ('planned', 'queued')
  RETURNING 1
)
SELECT (SELECT count(*) FROM changed WHERE NOT follows) AS closed,
       (SELECT count(*) FROM changed WHERE follows) AS moved,
       (SELECT count(*) FROM cancelled) AS cancelled
""")


async def _bulk(
    session: AsyncSession,
    statement: Any,
    as_of: date,
    *,
    at: datetime | None,
    actor: str,
    limit: int | None,
) -> Changes:
    row = (
        await session.execute(
            statement, {"as_of": as_of, "at": at or moment(as_of), "actor": actor, "limit": limit}
        )
    ).one()
    return Changes(closed=row.closed, moved=row.moved, cancelled=row.cancelled)


async def expire_invitations(
    session: AsyncSession,
    as_of: date,
    *,
    actor: str,
    at: datetime | None = None,
    limit: int | None = None,
) -> Changes:
    """Planned and open invitations whose ``valid_until`` is before ``as_of`` become expired."""
    return await _bulk(session, _EXPIRE, as_of, at=at, actor=actor, limit=limit)


async def withdraw_departed(
    session: AsyncSession,
    as_of: date,
    *,
    actor: str,
    at: datetime | None = None,
    limit: int | None = None,
) -> Changes:
    """Withdraw planned, open and booked invitations of residents who died, emigrated or moved
    out on or before ``as_of`` (a booked time is cancelled, so someone else can have it), and
    cancel every planned or queued message to them."""
    changes = await _bulk(session, _WITHDRAW_DEPARTED, as_of, at=at, actor=actor, limit=limit)
    swept = await session.execute(_CANCEL_TO_DEPARTED, {"as_of": as_of})
    changes.cancelled += int(getattr(swept, "rowcount", 0) or 0)
    return changes


async def follow_listings(
    session: AsyncSession,
    as_of: date,
    *,
    actor: str,
    at: datetime | None = None,
    limit: int | None = None,
) -> Changes:
    """Move planned and open invitations to the resident's new participating unit; withdraw
    them when the resident is listed elsewhere or not at all (see the module docstring)."""
    return await _bulk(session, _FOLLOW_LISTINGS, as_of, at=at, actor=actor, limit=limit)


async def apply_register_changes(
    session: AsyncSession, as_of: date, *, actor: str, at: datetime | None = None
) -> Changes:
    """What the resident import calls after each import, in its own transaction: withdrawals
    for residents who left, then invitations following listing moves."""
    changes = await withdraw_departed(session, as_of, actor=actor, at=at)
    changes.add(await follow_listings(session, as_of, actor=actor, at=at))
    return changes


Step = Callable[..., Awaitable[Changes]]


async def _all(
    sessionmaker: async_sessionmaker[AsyncSession],
    step: Step,
    as_of: date,
    *,
    actor: str,
    chunk: int,
) -> Changes:
    total = Changes()
    at = moment(as_of)
    while True:
        async with session_scope(sessionmaker) as session:
            changes = await step(session, as_of, actor=actor, at=at, limit=chunk)
        total.add(changes)
        if changes.closed + changes.moved < chunk:
            return total


async def expire_all(
    sessionmaker: async_sessionmaker[AsyncSession], as_of: date, *, actor: str, chunk: int = CHUNK
) -> Changes:
    """``expire_invitations`` over everything, one transaction per chunk (jobs and the CLI)."""
    total = await _all(sessionmaker, expire_invitations, as_of, actor=actor, chunk=chunk)
    log.info("expiry as_of=%s %s", as_of, total.as_dict())
    return total


async def withdraw_all(
    sessionmaker: async_sessionmaker[AsyncSession], as_of: date, *, actor: str, chunk: int = CHUNK
) -> Changes:
    """Withdrawals and listing moves over everything, one transaction per chunk (the daily
    safety net behind the import's own call of ``apply_register_changes``)."""
    total = await _all(sessionmaker, withdraw_departed, as_of, actor=actor, chunk=chunk)
    total.add(await _all(sessionmaker, follow_listings, as_of, actor=actor, chunk=chunk))
    log.info("withdrawal as_of=%s %s", as_of, total.as_dict())
    return total


# --- The resident's view (portal) ----------------------------------------------------------------


class InvitationView(BaseModel):
    """An invitation as the resident sees it (the portal adds the booked time)."""

    id: int = Field(description="Pass it back to decline")
    year: int
    age: int = Field(description="The age the resident turns this year")
    status: str = Field(
        description="planned (not sent yet), open, booked, attended (the result is awaited) or declined"
    )
    care_unit_name: str
    care_unit: str
    care_unit_visiting_address: str | None = Field(
        description="Where the resident comes; null when not known"
    )
    care_unit_phone: str | None = Field(description="The unit's phone for residents; null when not known")
    valid_until: date = Field(description="Last day the invitation can be used")


def _view(invitation: Invitation, unit: CareUnit) -> InvitationView:
    return InvitationView(
        id=invitation.id,
        year=invitation.year,
        age=invitation.age,
        status=invitation.status,
        care_unit_name=unit.name,
        care_unit=unit.hsa_id,
        care_unit_visiting_address=unit.visiting_address,
        care_unit_phone=unit.phone,
        valid_until=invitation.valid_until,
    )


async def current_invitation(session: AsyncSession, personnummer: str) -> InvitationView:
    """The resident's current invitation (planned, open, booked or attended; the latest if several), or
    404 ``no-invitation`` (also when the personnummer is not in the register)."""
    row = (
        await session.execute(
            select(Invitation, CareUnit)
            .join(Resident, Resident.id == Invitation.resident_id)
            .join(CareUnit, CareUnit.id == Invitation.care_unit_id)
            .where(
                Resident.personnummer == requested_personnummer(personnummer),
                Invitation.status.in_(("planned", "open", "booked", "attended")),
            )
            .order_by(Invitation.year.desc(), Invitation.id.desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise NoInvitation("the resident has no current invitation")
    return _view(*row)


async def change_status(
    session: AsyncSession, invitation_id: int, from_status: str, to_status: str, *, reason: str, actor: str
) -> None:
    """Set an invitation's status and append its history row (from, to, why, who); the
    caller holds the invitation's lock and has checked the change is allowed.

    An invitation that closes (leaves planned or open) stops its own messages in the same
    change: its letter if unsent and its reminders, planned or queued. (Messages about a booked
    time are the booking's to keep or cancel.)"""
    await session.execute(
        text("UPDATE invitations SET status = :to_status, updated_at = :now WHERE id = :id"),
        {"id": invitation_id, "to_status": to_status, "now": clock.now()},
    )
    if from_status in ACTIVE_STATUSES and to_status not in ACTIVE_STATUSES:
        await session.execute(
            text(
                "UPDATE messages SET status = 'cancelled' WHERE invitation_id = :id "
                "AND kind IN ('invitation', 'reminder') AND status IN ('planned', 'queued')"
            ),
            {"id": invitation_id},
        )
    await session.execute(
        text(
            "INSERT INTO invitation_events (invitation_id, from_status, to_status, reason, actor, at) "
            "VALUES (:id, :from_status, :to_status, :reason, :actor, :now)"
        ),
        {
            "now": clock.now(),
            "id": invitation_id,
            "from_status": from_status,
            "to_status": to_status,
            "reason": reason,
            "actor": actor,
        },
    )


async def decline(
    session: AsyncSession, personnummer: str, invitation_id: int, *, actor: str
) -> InvitationView:
    """Decline the resident's own invitation; its planned and queued messages are cancelled.

    404 ``no-invitation`` when the invitation is not this resident's (whether or not it exists:
    a portal learns nothing about other residents); 409 ``invitation-closed`` unless it is
    planned or open; an already declined invitation is returned unchanged.
    """
    row = (
        await session.execute(
            select(Invitation, CareUnit)
            .join(Resident, Resident.id == Invitation.resident_id)
            .join(CareUnit, CareUnit.id == Invitation.care_unit_id)
            .where(
                Invitation.id == invitation_id, Resident.personnummer == requested_personnummer(personnummer)
            )
            .with_for_update(of=Invitation)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise NoInvitation("the resident has no such invitation")
    invitation, unit = row
    if invitation.status == "declined":
        return _view(invitation, unit)
    if invitation.status not in ("planned", "open"):
        raise InvitationClosed(
            f"the invitation is {invitation.status} and can no longer be declined",
            invitation_status=invitation.status,
        )
    await change_status(
        session, invitation_id, invitation.status, "declined", reason="declined by the resident", actor=actor
    )
    await session.execute(
        text(
            # The confirmation that a booked time was cancelled by this decline still goes out.
            "UPDATE messages SET status = 'cancelled' "
            "WHERE invitation_id = :id AND status IN ('planned', 'queued') AND kind <> 'booking_cancelled'"
        ),
        {"id": invitation_id},
    )
    invitation.status = "declined"
    return _view(invitation, unit)


# --- History (operators) ------------------------------------------------------------------------


class InvitationEventOut(BaseModel):
    from_status: str | None = Field(description="Null for the event that created the invitation")
    to_status: str
    at: LocalTime
    reason: str
    actor: str = Field(description="API client name, 'cli' or 'worker'")


class InvitationHistory(BaseModel):
    invitation_id: int
    status: str
    events: list[InvitationEventOut] = Field(description="Oldest first")


async def history(session: AsyncSession, invitation_id: int) -> InvitationHistory:
    """An invitation's status history, oldest first (404 ``invitation-not-found``)."""
    status = (
        await session.execute(select(Invitation.status).where(Invitation.id == invitation_id))
    ).scalar_one_or_none()
    if status is None:
        raise InvitationNotFound(f"no invitation {invitation_id}")
    events = await session.execute(
        select(InvitationEvent)
        .where(InvitationEvent.invitation_id == invitation_id)
        .order_by(InvitationEvent.id)
    )
    return InvitationHistory(
        invitation_id=invitation_id,
        status=status,
        events=[
            InvitationEventOut(
                from_status=e.from_status, to_status=e.to_status, at=e.at, reason=e.reason, actor=e.actor
            )
            for e in events.scalars()
        ],
    )
