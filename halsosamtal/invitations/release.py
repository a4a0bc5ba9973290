"""Release of the programme's messages: each due planned message gets its channel and its text,
and an invitation opens when its letter goes out.

Belongs to invitations (it reads the invitation, the resident and the unit to write the text,
and opens the invitation in the same transaction); the messaging service below it chooses the
channel, renders the templates, stores the result and delivers.

**Release** (daily, and after reminders are created): every planned message whose send date has
come and whose invitation is still planned or open gets its channel chosen and its text
rendered, and becomes queued; an invitation message opens its invitation (planned -> open, with
a history row) in the same transaction. Booking messages (confirmations, appointment reminders)
go out whatever the invitation's status is now. Rows are taken in chunks with ``FOR UPDATE ...
SKIP LOCKED``, so two workers releasing at once each take different rows and none is queued
twice.

Timestamps written by a run for a given day (``as_of``) are "now, moved to that day" (see
``moment``), so a run for a past day (the CLI's ``--as-of``) writes the dates that day would have
written, and reminders counted from them fall on the right days.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.clock import moment
from halsosamtal.core.database import session_scope
from halsosamtal.core.settings import Settings
from halsosamtal.invitations.models import Invitation
from halsosamtal.messaging.models import Message
from halsosamtal.messaging.outbox import (
    ACTIVE_INVITATION_STATUSES,
    INVITATION_KINDS,
    RELEASE_CHUNK,
    MessageNotFound,
    MessageNotRetryable,
    MessageOut,
    Rendering,
    cached_renderer,
    get_message,
    prepare,
    requeue_failed,
    store_renderings,
)
from halsosamtal.messaging.templates import MessageContext, MessageKind, MessageTemplateError
from halsosamtal.residents.contacts import Recipient
from halsosamtal.residents.models import Resident
from halsosamtal.units.models import CareUnit

log = logging.getLogger("halsosamtal.messaging")


@dataclass
class ReleaseResult:
    """What a release did. ``template_errors``: distinct rendering problems; those messages stay
    planned and are released by the next run once the template is fixed."""

    queued: int = 0
    failed: int = 0
    opened: int = 0
    cancelled: int = 0
    template_errors: list[str] = field(default_factory=list)

    def add(self, other: ReleaseResult) -> None:
        self.queued += other.queued
        self.failed += other.failed
        self.opened += other.opened
        self.cancelled += other.cancelled
        for error in other.template_errors:
            if error not in self.template_errors:
                self.template_errors.append(error)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_CANCEL_ORPHANED_PLANNED = text("""
UPDATE messages m SET status = 'cancelled'
FROM invitations i
WHERE i.id = m.invitation_id AND m.status = 'planned' AND m.send_on <= :as_of
  AND m.kind IN ('invitation', 'reminder') AND i.status NOT IN ('planned', 'open')
""")


# The invitation's own message went out: planned -> open, with its history row.
_OPEN_INVITATIONS = text("""
WITH v AS (
  SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:reasons AS text[])) AS v(id, reason)
), opened AS (
  UPDATE invitations i
  SET status = 'open', sent_at = CAST(:at AS timestamptz), last_message_at = CAST(:at AS timestamptz),
      updated_at = CAST(:at AS timestamptz)
  FROM v WHERE i.id = v.id AND i.status = 'planned'
  RETURNING i.id, v.reason
)
INSERT INTO invitation_events (invitation_id, from_status, to_status, at, reason, actor)
SELECT id, 'planned', 'open', CAST(:at AS timestamptz), reason, :actor FROM opened
""")

_TOUCH_INVITATIONS = text("""
UPDATE invitations
SET last_message_at = GREATEST(last_message_at, CAST(:at AS timestamptz)),
    updated_at = CAST(:at AS timestamptz)
WHERE id = ANY(CAST(:ids AS bigint[]))
""")


async def _select_for_release(
    session: AsyncSession,
    *,
    as_of: date | None,
    after: int = 0,
    limit: int = RELEASE_CHUNK,
    ids: Sequence[int] | None = None,
    kinds: Sequence[str] | None = None,
) -> Sequence[Any]:
    """Planned messages, locked, for invitations that are still active (the booking kinds: for
    any invitation); rows another worker holds are skipped."""
    query = (
        select(
            Message.id,
            Message.kind,
            Message.sequence,
            Message.invitation_id,
            Message.appointment_at,
            Message.previous_appointment_at,
            Invitation.status.label("invitation_status"),
            Invitation.year,
            Invitation.age,
            Invitation.valid_until,
            CareUnit.name.label("unit_name"),
            CareUnit.phone.label("unit_phone"),
            CareUnit.visiting_address.label("unit_address"),
            Resident,
        )
        .join(Invitation, Invitation.id == Message.invitation_id)
        .join(Resident, Resident.id == Message.resident_id)
        .join(CareUnit, CareUnit.id == Invitation.care_unit_id)
        .where(
            Message.status == "planned",
            Message.id > after,
            or_(
                Message.kind.not_in(INVITATION_KINDS),
                Invitation.status.in_(ACTIVE_INVITATION_STATUSES),
            ),
        )
        .order_by(Message.id)
        .limit(limit)
        # Lock the invitation too: it changes in this transaction, and a decline or withdrawal
        # (which locks the invitation, then its messages) then waits for us or is skipped,
        # never deadlocks with us.
        .with_for_update(of=[Message.__table__, Invitation.__table__], skip_locked=True)
    )
    if as_of is not None:
        query = query.where(Message.send_on <= as_of)
    if ids is not None:
        query = query.where(Message.id.in_(list(ids)))
    if kinds is not None:
        query = query.where(Message.kind.in_(list(kinds)))
    return (await session.execute(query)).all()


async def _release_rows(
    session: AsyncSession,
    rows: Sequence[Any],
    settings: Settings,
    *,
    at: datetime,
    actor: str,
) -> ReleaseResult:
    """Render each selected message (Python), then store them all and open invitations (SQL)."""
    result = ReleaseResult()
    stored: list[tuple[int, Rendering]] = []
    to_open: dict[int, str] = {}
    touched: set[int] = set()
    renderer = cached_renderer(settings)
    for row in rows:
        resident: Resident = row.Resident
        context = MessageContext(
            unit_name=row.unit_name,
            unit_phone=row.unit_phone,
            unit_address=row.unit_address,
            year=row.year,
            age=row.age,
            valid_until=row.valid_until,
            booking_url=settings.booking_url,
            reminder_number=row.sequence if row.kind == "reminder" else None,
            appointment_at=row.appointment_at,
            previous_appointment_at=row.previous_appointment_at,
        )
        try:
            rendering = prepare(
                cast(MessageKind, row.kind), Recipient.from_resident(resident), context, settings, renderer
            )
        except MessageTemplateError as exc:
            # A broken template is the deployment's fault, not the resident's: leave the message
            # planned so the next release, after the fix, sends it; say so loudly meanwhile.
            log.error("message %s not released: %s", row.id, exc)
            if str(exc) not in result.template_errors:
                result.template_errors.append(str(exc))
            continue
        stored.append((row.id, rendering))
        if rendering.status == "failed":
            result.failed += 1
            continue
        result.queued += 1
        if row.invitation_id is not None:
            touched.add(row.invitation_id)
            if row.kind == "invitation" and row.invitation_status == "planned":
                to_open[row.invitation_id] = f"invitation released ({rendering.channel})"
    if not stored:
        return result
    await store_renderings(session, stored, at=at)
    if to_open:
        opened = await session.execute(
            _OPEN_INVITATIONS,
            {"at": at, "actor": actor, "ids": list(to_open), "reasons": list(to_open.values())},
        )
        result.opened = _rowcount(opened)
    rest = touched - set(to_open)
    if rest:
        await session.execute(_TOUCH_INVITATIONS, {"at": at, "ids": sorted(rest)})
    return result


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def release_chunk(
    session: AsyncSession,
    settings: Settings,
    as_of: date,
    *,
    after: int = 0,
    limit: int = RELEASE_CHUNK,
    at: datetime | None = None,
    actor: str = "worker",
    kinds: Sequence[str] | None = None,
) -> tuple[ReleaseResult, int | None]:
    """Release up to ``limit`` due messages with ids above ``after`` in the caller's transaction.

    Returns what it did and the last id it looked at (None when there was nothing left), which
    the next chunk starts after: messages left planned by a template error are not retried in
    the same run, and rows another worker holds are that worker's.
    """
    rows = await _select_for_release(session, as_of=as_of, after=after, limit=limit, kinds=kinds)
    if not rows:
        return ReleaseResult(), None
    result = await _release_rows(session, rows, settings, at=at or moment(as_of), actor=actor)
    return result, rows[-1].id


async def release_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    as_of: date,
    *,
    chunk: int = RELEASE_CHUNK,
    actor: str = "worker",
    kinds: Sequence[str] | None = None,
) -> ReleaseResult:
    """Release every message due on ``as_of``, one transaction per chunk (jobs and the CLI).

    First cancels due planned messages whose invitation has closed (booked, declined, ...) so
    they do not wait for ever. Safe to run twice, or in two workers at once. ``kinds`` limits
    the release to those message kinds (the minutely release of booking confirmations).
    """
    total = ReleaseResult()
    at = moment(as_of)
    async with session_scope(sessionmaker) as session:
        total.cancelled = _rowcount(await session.execute(_CANCEL_ORPHANED_PLANNED, {"as_of": as_of}))
    after = 0
    while True:
        async with session_scope(sessionmaker) as session:
            result, last = await release_chunk(
                session, settings, as_of, after=after, limit=chunk, at=at, actor=actor, kinds=kinds
            )
        if last is None:
            break
        total.add(result)
        after = last
    did_something = total.queued or total.failed or total.opened or total.cancelled or total.template_errors
    # A release that found nothing (the minutely one for confirmations, mostly) is not news.
    log.log(
        logging.INFO if did_something else logging.DEBUG,
        "release as_of=%s queued=%s failed=%s opened=%s cancelled=%s template_errors=%s",
        as_of,
        total.queued,
        total.failed,
        total.opened,
        total.cancelled,
        len(total.template_errors),
    )
    return total


async def retry_message(
    session: AsyncSession, settings: Settings, message_id: int, *, actor: str
) -> MessageOut:
    """Give a failed message one more try.

    A message that failed in delivery is queued again as it is (same id, same text; its attempts
    are kept, so this is one more try). A message that never had a channel (nobody could be
    reached at release, e.g. ``no_address``) goes through release again now, with the register
    as it is today: it is queued, or fails again with the reason (or stays planned, for the next
    release, if its template cannot be rendered). 404 for an unknown id, 409
    ``message-not-failed`` unless it failed, 409 ``message-not-retryable`` when its invitation
    has closed (declined, withdrawn, ...).
    """
    invitation_id = (
        await session.execute(select(Message.invitation_id).where(Message.id == message_id))
    ).first()
    if invitation_id is None:
        raise MessageNotFound(f"no message {message_id}")
    # Lock the invitation before the message, in the order decline and withdrawal lock them.
    invitation_status = None
    if invitation_id[0] is not None:
        invitation_status = (
            await session.execute(
                select(Invitation.status).where(Invitation.id == invitation_id[0]).with_for_update()
            )
        ).scalar_one()
    kind = (await session.execute(select(Message.kind, Message.status).where(Message.id == message_id))).one()
    if (
        kind.status == "failed"
        and kind.kind in INVITATION_KINDS
        and invitation_status is not None
        and invitation_status not in ACTIVE_INVITATION_STATUSES
    ):
        raise MessageNotRetryable(
            f"message {message_id} belongs to an invitation that is {invitation_status}",
            invitation_status=invitation_status,
        )
    message = await requeue_failed(session, message_id)
    if message.status == "planned":
        rows = await _select_for_release(session, as_of=None, ids=[message_id])
        await _release_rows(session, rows, settings, at=clock.now(), actor=actor)
    log.info("message %s retried by %s", message_id, actor)
    return await get_message(session, message_id)
