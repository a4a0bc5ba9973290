"""A unit with published times, residents with open invitations, and the keys that act on them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.residents.models import Resident
from halsosamtal.units.models import CareUnit
from tests.conftest import KeyMaker
from tests.messaging.factories import fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]


@dataclass
class Invited:
    person: Resident
    invitation_id: int

    @property
    def pnr(self) -> str:
        return self.person.personnummer


@dataclass
class Centre:
    unit: CareUnit
    ehr: dict[str, str]

    @property
    def slots_url(self) -> str:
        return f"/v1/care-units/{self.unit.hsa_id}/slots"


async def centre(make_unit: MakeUnit, make_key: KeyMaker, **fields: Any) -> Centre:
    unit = await make_unit(**fields)
    return Centre(unit, await make_key("ehr", units=[unit.hsa_id]))


async def invited(sm: SM, unit: CareUnit, **fields: Any) -> Invited:
    """A resident listed at ``unit`` with an open invitation (sent 1 March 2027)."""
    person = await resident(sm, unit.id, **fields)
    invitation_id, _ = await make_invitation(sm, person, unit.id, sent_on=dt.date(2027, 3, 1))
    return Invited(person, invitation_id)


async def publish(
    api: httpx.AsyncClient, where: Centre, *starts: str, minutes: int = 45, resource: str = ""
) -> list[int]:
    """Publish explicit times (ISO local times with offset); returns their ids by start."""
    body = {
        "slots": [
            {
                "starts_at": s,
                "ends_at": (dt.datetime.fromisoformat(s) + dt.timedelta(minutes=minutes)).isoformat(),
                "resource": resource,
            }
            for s in starts
        ]
    }
    response = await api.post(where.slots_url, json=body, headers=where.ehr)
    assert response.status_code == 200, response.text
    ids = []
    for s in starts:
        rows = await api.get(
            where.slots_url,
            params={"first_day": s[:10], "last_day": s[:10], "limit": 1000},
            headers=where.ehr,
        )
        ids += [
            x["id"]
            for x in rows.json()["items"]
            if x["starts_at"] == dt.datetime.fromisoformat(s).isoformat() and x["resource"] == resource
        ]
    return ids


def in_days(days: int, hour: int = 9) -> str:
    """A local time ``days`` from today at ``hour``:00, as ISO with its Stockholm offset."""
    from halsosamtal.core.clock import STOCKHOLM

    day = dt.datetime.now(STOCKHOLM).date() + dt.timedelta(days=days)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=STOCKHOLM).isoformat()


async def messages(sm: SM, invitation_id: int) -> list[Any]:
    return await fetch(
        sm,
        "SELECT kind, status, send_on, appointment_at, previous_appointment_at, appointment_id "
        "FROM messages WHERE invitation_id = :id ORDER BY id",
        id=invitation_id,
    )


async def invitation_status(sm: SM, invitation_id: int) -> str:
    return str((await fetch(sm, "SELECT status FROM invitations WHERE id = :id", id=invitation_id))[0][0])


__all__ = ["make_year"]


async def assert_slots_agree_with_appointments(sm: SM) -> None:
    """Each slot's ``held_by`` is the appointment that holds it (booked, attended, no-show), or
    NULL: the denormalised pointer the free-time search reads never drifts from the truth."""
    drift = await fetch(
        sm,
        "SELECT s.id, s.held_by, a.id AS holder FROM slots s "
        "LEFT JOIN appointments a ON a.slot_id = s.id AND a.status IN ('booked', 'attended', 'no_show') "
        "WHERE s.held_by IS DISTINCT FROM a.id",
    )
    assert drift == [], drift
