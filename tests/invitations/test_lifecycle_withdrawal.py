"""Expiry, withdrawal of residents who left, and invitations following listing moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.runtime import Resources
from halsosamtal.invitations import lifecycle
from halsosamtal.invitations.lifecycle_jobs import expire_invitations, withdraw_invitations
from halsosamtal.units.models import CareUnit
from tests.messaging.factories import VALID_UNTIL, execute, fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
TODAY = dt.date(2027, 6, 1)


async def _status(sm: SM) -> dict[int, str]:
    return dict(await fetch(sm, "SELECT id, status FROM invitations"))


async def _messages(sm: SM) -> dict[int, str]:
    return dict(await fetch(sm, "SELECT id, status FROM messages"))


async def _events(sm: SM, invitation_id: int) -> list[tuple[str | None, str, str, str]]:
    rows = await fetch(
        sm,
        "SELECT from_status, to_status, reason, actor FROM invitation_events "
        "WHERE invitation_id = :id ORDER BY id",
        id=invitation_id,
    )
    return [tuple(r) for r in rows]


async def _reminder(sm: SM, invitation_id: int, status: str = "queued") -> int:
    async with sm() as s, s.begin():
        message_id = await s.scalar(
            text(
                "INSERT INTO messages (resident_id, invitation_id, kind, sequence, send_on, status, channel, "
                "body) SELECT resident_id, id, 'reminder', 1, DATE '2027-03-29', :status, 'letter', 'x' "
                "FROM invitations WHERE id = :id RETURNING id"
            ),
            {"id": invitation_id, "status": status},
        )
    return int(message_id)


async def test_invitations_expire_after_their_last_valid_day_and_their_messages_are_cancelled(
    sessionmaker: SM, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    planned, planned_msg = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id), unit.id, send_on=dt.date(2028, 3, 1)
    )
    opened, sent_msg = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id), unit.id, sent_on=dt.date(2027, 3, 1)
    )
    queued_reminder = await _reminder(sessionmaker, opened)
    booked, _ = await make_invitation(
        sessionmaker,
        await resident(sessionmaker, unit.id),
        unit.id,
        sent_on=dt.date(2027, 3, 1),
        status="booked",
    )

    nothing = await lifecycle.expire_all(sessionmaker, VALID_UNTIL, actor="cli")
    assert nothing.closed == 0
    changes = await lifecycle.expire_all(sessionmaker, VALID_UNTIL + dt.timedelta(days=1), actor="cli")

    assert (changes.closed, changes.cancelled) == (2, 2)
    assert await _status(sessionmaker) == {planned: "expired", opened: "expired", booked: "booked"}
    messages = await _messages(sessionmaker)
    assert (messages[planned_msg], messages[queued_reminder], messages[sent_msg]) == (
        "cancelled",
        "cancelled",
        "sent",
    )
    assert (await _events(sessionmaker, opened))[-1] == (
        "open",
        "expired",
        "valid until 2028-03-31, which has passed",
        "cli",
    )
    assert (await lifecycle.expire_all(sessionmaker, dt.date(2028, 5, 1), actor="cli")).closed == 0


async def test_residents_who_died_emigrated_or_moved_out_have_their_invitations_withdrawn(
    sessionmaker: SM, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    people = {
        "died": await resident(sessionmaker, unit.id, deceased_on=dt.date(2027, 5, 2)),
        "emigrated": await resident(sessionmaker, unit.id, emigrated_on=TODAY),
        "moved": await resident(sessionmaker, None, moved_out_on=dt.date(2027, 4, 1)),
        "dies_later": await resident(sessionmaker, unit.id, deceased_on=TODAY + dt.timedelta(days=1)),
        "alive": await resident(sessionmaker, unit.id),
    }
    ids = {k: await make_invitation(sessionmaker, p, unit.id) for k, p in people.items()}
    opened, _ = await make_invitation(
        sessionmaker,
        await resident(sessionmaker, unit.id, deceased_on=dt.date(2027, 5, 2)),
        unit.id,
        sent_on=dt.date(2027, 3, 1),
    )
    reminder = await _reminder(sessionmaker, opened)
    # A booked invitation is withdrawn too (its time is freed: see tests/booking), and no message
    # of any kind goes to someone who died.
    booked, _ = await make_invitation(
        sessionmaker,
        await resident(sessionmaker, unit.id, deceased_on=dt.date(2027, 5, 2)),
        unit.id,
        sent_on=dt.date(2027, 3, 1),
        status="booked",
    )
    appointment_reminder = await _reminder(sessionmaker, booked, status="planned")

    changes = await lifecycle.withdraw_all(sessionmaker, TODAY, actor="worker", chunk=2)

    status = await _status(sessionmaker)
    assert {k: status[i] for k, (i, _) in ids.items()} == {
        "died": "withdrawn",
        "emigrated": "withdrawn",
        "moved": "withdrawn",
        "dies_later": "planned",
        "alive": "planned",
    }
    assert (status[opened], status[booked]) == ("withdrawn", "withdrawn")
    messages = await _messages(sessionmaker)
    for key in ("died", "emigrated", "moved"):
        assert messages[ids[key][1]] == "cancelled"
    assert messages[ids["alive"][1]] == "planned"
    assert (messages[reminder], messages[appointment_reminder]) == ("cancelled", "cancelled")
    assert changes.closed == 5
    assert changes.cancelled == 5
    reasons = {k: (await _events(sessionmaker, ids[k][0]))[-1] for k in ("died", "emigrated", "moved")}
    assert reasons == {
        "died": ("planned", "withdrawn", "the resident died on 2027-05-02", "worker"),
        "emigrated": ("planned", "withdrawn", "the resident emigrated on 2027-06-01", "worker"),
        "moved": ("planned", "withdrawn", "the resident moved out of the region on 2027-04-01", "worker"),
    }
    assert (await _events(sessionmaker, opened))[-1][:2] == ("open", "withdrawn")
    again = await lifecycle.withdraw_all(sessionmaker, TODAY, actor="worker")
    assert again.as_dict() == {"closed": 0, "moved": 0, "cancelled": 0}


async def test_an_invitation_follows_its_resident_to_another_participating_unit_until_booked(
    sessionmaker: SM, make_unit: MakeUnit
) -> None:
    old = await make_unit(name="Vårdcentralen Gamla")
    new = await make_unit(name="Vårdcentralen Nya")
    outside = await make_unit(participating=False)
    await make_year(sessionmaker)
    movers = {
        "planned": await resident(sessionmaker, old.id),
        "open": await resident(sessionmaker, old.id),
        "booked": await resident(sessionmaker, old.id),
        "non_participating": await resident(sessionmaker, old.id),
        "unlisted": await resident(sessionmaker, old.id),
        "stays": await resident(sessionmaker, old.id),
    }
    sent = {"open": dt.date(2027, 3, 1), "booked": dt.date(2027, 3, 1)}
    ids = {
        k: await make_invitation(
            sessionmaker, p, old.id, sent_on=sent.get(k), status="booked" if k == "booked" else "planned"
        )
        for k, p in movers.items()
    }
    for key, unit_id in (
        ("planned", new.id),
        ("open", new.id),
        ("booked", new.id),
        ("non_participating", outside.id),
        ("unlisted", None),
    ):
        await execute(
            sessionmaker,
            "UPDATE residents SET care_unit_id = :u WHERE id = :id",
            u=unit_id,
            id=movers[key].id,
        )

    async with sessionmaker() as s, s.begin():  # as the resident import calls it, in its transaction
        changes = await lifecycle.apply_register_changes(s, TODAY, actor="import")

    assert (changes.moved, changes.closed, changes.cancelled) == (2, 2, 2)
    rows = {r.id: r for r in await fetch(sessionmaker, "SELECT id, status, care_unit_id FROM invitations")}
    got = {k: (rows[i].status, rows[i].care_unit_id) for k, (i, _) in ids.items()}
    assert got == {
        "planned": ("planned", new.id),
        "open": ("open", new.id),
        "booked": ("booked", old.id),
        "non_participating": ("withdrawn", old.id),
        "unlisted": ("withdrawn", old.id),
        "stays": ("planned", old.id),
    }
    moved_event = (await _events(sessionmaker, ids["open"][0]))[-1]
    assert moved_event == (
        "open",
        "open",
        f"listing moved from Vårdcentralen Gamla ({old.hsa_id}) to Vårdcentralen Nya ({new.hsa_id})",
        "import",
    )
    assert (await _events(sessionmaker, ids["non_participating"][0]))[-1][1:3] == (
        "withdrawn",
        f"listing moved from Vårdcentralen Gamla ({old.hsa_id}) to {outside.name} ({outside.hsa_id}), "
        "which does not take part",
    )
    assert (await _events(sessionmaker, ids["unlisted"][0]))[-1][2] == (
        f"no longer listed at a care unit in the region (was Vårdcentralen Gamla ({old.hsa_id}))"
    )
    messages = await _messages(sessionmaker)
    assert messages[ids["planned"][1]] == "planned", "a move sends nothing and cancels nothing"
    assert messages[ids["non_participating"][1]] == messages[ids["unlisted"][1]] == "cancelled"

    async with sessionmaker() as s, s.begin():
        again = await lifecycle.apply_register_changes(s, TODAY, actor="import")
    assert again.as_dict() == {"closed": 0, "moved": 0, "cancelled": 0}


async def test_the_upkeep_jobs_run_for_the_given_day(
    sessionmaker: SM, resources: Resources, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    gone, _ = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id, emigrated_on=TODAY), unit.id
    )
    old, _ = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id), unit.id, valid_until=dt.date(2027, 5, 31)
    )
    ctx = {"resources": resources}
    assert (await withdraw_invitations(ctx, TODAY.isoformat()))["closed"] == 1
    assert (await expire_invitations(ctx, TODAY.isoformat()))["closed"] == 1
    assert await _status(sessionmaker) == {gone: "withdrawn", old: "expired"}
