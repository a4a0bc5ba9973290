"""Invitations and their messages as the batch creates them, inserted directly.

A batch-created invitation is 'planned' with ``planned_send_on``, one planned invitation
message (channel and text NULL until released) and one history row (NULL -> planned).
"""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.clock import moment
from halsosamtal.invitations.models import Invitation, InvitationEvent
from halsosamtal.messaging.models import Message
from halsosamtal.programmes.models import ProgrammeYear
from halsosamtal.residents.models import Resident
from tests.factories import make_resident

YEAR = 2027
VALID_UNTIL = dt.date(2028, 3, 31)
SEND_ON = dt.date(2027, 3, 1)

_births = itertools.count()


def birth(age: int = 40, year: int = YEAR) -> dt.date:
    """A birth date turning ``age`` in ``year``, different on each call (so personnummer differ)."""
    return dt.date(year - age, 1, 1) + dt.timedelta(days=next(_births) % 365)


async def make_year(
    sm: async_sessionmaker[AsyncSession],
    year: int = YEAR,
    *,
    reminder_days: list[int] | None = None,
    valid_until: dt.date = VALID_UNTIL,
) -> None:
    async with sm() as s, s.begin():
        s.add(
            ProgrammeYear(
                year=year,
                target_ages=[40, 50, 60],
                talk_rate=Decimal(1000),
                reminder_days=[28, 56] if reminder_days is None else reminder_days,
                valid_until=valid_until,
            )
        )


ADDRESS = {"address_line": "Storgatan 1", "postal_code": "302 31", "city": "Halmstad"}


async def resident(
    sm: async_sessionmaker[AsyncSession], unit_id: int | None, *, age: int = 40, **fields: Any
) -> Resident:
    """A resident listed at ``unit_id`` with a postal address unless fields say otherwise."""
    values = {**ADDRESS, **fields}
    return await make_resident(sm, birth(age), care_unit_id=unit_id, **values)


async def make_invitation(
    sm: async_sessionmaker[AsyncSession],
    person: Resident,
    unit_id: int,
    *,
    year: int = YEAR,
    age: int = 40,
    send_on: dt.date = SEND_ON,
    valid_until: dt.date = VALID_UNTIL,
    status: str = "planned",
    sent_on: dt.date | None = None,
) -> tuple[int, int]:
    """An invitation and its invitation message; returns (invitation id, message id).

    ``sent_on``: the invitation went out that day (status 'open' unless given, message sent)."""
    async with sm() as s, s.begin():
        sent_at = moment(sent_on) if sent_on else None
        invitation = Invitation(
            year=year,
            age=age,
            resident_id=person.id,
            care_unit_id=unit_id,
            planned_send_on=send_on,
            status="open" if sent_on and status == "planned" else status,
            sent_at=sent_at,
            last_message_at=sent_at,
            valid_until=valid_until,
        )
        s.add(invitation)
        await s.flush()
        message = Message(
            resident_id=person.id,
            invitation_id=invitation.id,
            kind="invitation",
            send_on=send_on,
        )
        if sent_on:
            message.status = "sent"
            message.channel = "letter"
            message.language = "sv"
            message.template = "invitation.long.sv.j2"
            message.subject = "Inbjudan"
            message.body = "Välkommen"
            message.queued_at = message.sent_at = sent_at
            message.attempts = 1
        s.add(message)
        s.add(
            InvitationEvent(
                invitation_id=invitation.id,
                from_status=None,
                to_status="planned",
                reason="batch 1",
                actor="cli",
            )
        )
        await s.flush()
        return invitation.id, message.id


async def fetch(sm: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> list[Any]:
    async with sm() as s:
        return list((await s.execute(text(sql), params)).all())


async def execute(sm: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> None:
    async with sm() as s, s.begin():
        await s.execute(text(sql), params)
