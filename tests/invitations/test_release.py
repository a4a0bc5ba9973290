"""Release: due planned messages get a channel and their text, and open their invitation."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.core.settings import Settings
from halsosamtal.invitations import release as outbox
from halsosamtal.messaging.outbox import list_failed
from halsosamtal.units.models import CareUnit
from tests.messaging.factories import SEND_ON, execute, fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
NO_ADDRESS: dict[str, Any] = {"address_line": None, "postal_code": None, "city": None}


def webhook(settings: Settings, **more: object) -> Settings:
    return settings.model_copy(update={"messaging_gateway": "webhook", **more})


async def test_release_chooses_the_channel_renders_the_text_and_opens_the_invitation(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit(
        name="Vårdcentralen Andersberg", visiting_address="Andersbergsvägen 1, Halmstad", phone="035-13 10 00"
    )
    await make_year(sessionmaker)
    people = {
        "mailbox": await resident(sessionmaker, unit.id, digital_mailbox=True, phone="0701234567"),
        "sms": await resident(sessionmaker, unit.id, phone="070-123 45 67", language="en"),
        "letter": await resident(sessionmaker, unit.id, phone="08-123 456 78"),
        "protected": await resident(sessionmaker, unit.id, protected_identity=True, **NO_ADDRESS),
        "nowhere": await resident(sessionmaker, unit.id, **NO_ADDRESS),
    }
    ids = {k: await make_invitation(sessionmaker, p, unit.id) for k, p in people.items()}

    result = await outbox.release_due(sessionmaker, webhook(settings), SEND_ON)

    assert (result.queued, result.failed, result.opened) == (4, 1, 4)
    rows = {
        r.id: r
        for r in await fetch(
            sessionmaker,
            "SELECT id, status, channel, language, template, subject, body, last_error, queued_at "
            "FROM messages",
        )
    }
    expect = {
        "mailbox": ("queued", "digital_mailbox", "sv", "invitation.long.sv.j2"),
        "sms": ("queued", "sms", "en", "invitation.short.en.j2"),
        "letter": ("queued", "letter", "sv", "invitation.long.sv.j2"),
        "protected": ("queued", "letter_protected", "sv", "invitation.long.sv.j2"),
        "nowhere": ("failed", None, "sv", "invitation.long.sv.j2"),
    }
    for key, (status, channel, language, template) in expect.items():
        row = rows[ids[key][1]]
        assert (row.status, row.channel, row.language, row.template) == (
            status,
            channel,
            language,
            template,
        ), key
        assert "Vårdcentralen Andersberg" in row.body
        assert "035-13 10 00" in row.body  # the unit's phone: who to contact
        assert ("Andersbergsvägen 1" in row.body) == (channel != "sms"), key  # letters: where
        assert "https://www.1177.se" in row.body
        assert ("31 mars 2028" if language == "sv" else "31 March 2028") in row.body
        assert (row.subject is None) == (channel == "sms")
    assert rows[ids["nowhere"][1]].last_error == "no_address"
    assert rows[ids["nowhere"][1]].queued_at is None
    assert rows[ids["mailbox"][1]].queued_at.astimezone(STOCKHOLM).date() == SEND_ON

    invitations = {
        r.id: r
        for r in await fetch(sessionmaker, "SELECT id, status, sent_at, last_message_at FROM invitations")
    }
    for key, (invitation_id, _) in ids.items():
        inv = invitations[invitation_id]
        if key == "nowhere":  # nothing went out: it stays planned, and the message is in the failed list
            assert (inv.status, inv.sent_at) == ("planned", None)
        else:
            assert inv.status == "open"
            assert inv.sent_at == inv.last_message_at
            assert inv.sent_at.astimezone(STOCKHOLM).date() == SEND_ON
    events = await fetch(
        sessionmaker,
        "SELECT invitation_id, from_status, to_status, reason, actor FROM invitation_events "
        "WHERE from_status IS NOT NULL",
    )
    assert sorted((e.invitation_id, e.from_status, e.to_status, e.actor) for e in events) == sorted(
        (ids[k][0], "planned", "open", "worker") for k in ids if k != "nowhere"
    )
    assert {e.reason for e in events if e.invitation_id == ids["sms"][0]} == {"invitation released (sms)"}

    async with sessionmaker() as s:
        failed = await list_failed(s)
    assert [m.id for m in failed.items] == [ids["nowhere"][1]]


async def test_with_the_letters_gateway_everything_is_a_letter(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    a = await resident(sessionmaker, unit.id, digital_mailbox=True, phone="0701234567")
    b = await resident(sessionmaker, unit.id, digital_mailbox=True, protected_identity=True, **NO_ADDRESS)
    await make_invitation(sessionmaker, a, unit.id)
    await make_invitation(sessionmaker, b, unit.id)
    assert settings.messaging_gateway == "letters"
    await outbox.release_due(sessionmaker, settings, SEND_ON)
    rows = await fetch(sessionmaker, "SELECT resident_id, channel FROM messages ORDER BY resident_id")
    assert [r.channel for r in rows] == ["letter", "letter_protected"]


async def test_release_waits_for_the_send_date_and_never_sends_for_a_closed_invitation(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    later = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id), unit.id, send_on=SEND_ON + dt.timedelta(days=1)
    )
    declined = await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id)
    await execute(sessionmaker, "UPDATE invitations SET status = 'declined' WHERE id = :id", id=declined[0])

    result = await outbox.release_due(sessionmaker, settings, SEND_ON)

    assert (result.queued, result.cancelled) == (0, 1)
    status = dict(await fetch(sessionmaker, "SELECT id, status FROM messages"))
    assert status == {later[1]: "planned", declined[1]: "cancelled"}
    again = await outbox.release_due(sessionmaker, settings, SEND_ON + dt.timedelta(days=1))
    assert again.queued == 1


async def test_a_second_release_changes_nothing(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    for _ in range(3):
        await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id)
    first = await outbox.release_due(sessionmaker, settings, SEND_ON)
    before = await fetch(sessionmaker, "SELECT * FROM messages ORDER BY id")
    second = await outbox.release_due(sessionmaker, settings, SEND_ON)
    assert (first.queued, second.queued, second.opened) == (3, 0, 0)
    assert await fetch(sessionmaker, "SELECT * FROM messages ORDER BY id") == before
    assert len(await fetch(sessionmaker, "SELECT id FROM invitation_events")) == 6


async def test_two_concurrent_releases_never_queue_a_message_twice(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    await execute(
        sessionmaker,
        """
        WITH r AS (
          INSERT INTO residents
            (personnummer, birth_date, sex, care_unit_id, address_line, postal_code, city)
          SELECT lpad(g::text, 12, '0'), DATE '1987-01-01' + g % 365, 'F', :unit,
                 'Gatan 1', '30231', 'Halmstad'
          FROM generate_series(1, 400) g
          RETURNING id
        ), i AS (
          INSERT INTO invitations (year, age, resident_id, care_unit_id, planned_send_on, valid_until)
          SELECT 2027, 40, id, :unit, DATE '2027-03-01', DATE '2028-03-31' FROM r
          RETURNING id, resident_id
        )
        INSERT INTO messages (resident_id, invitation_id, kind, send_on)
        SELECT resident_id, id, 'invitation', DATE '2027-03-01' FROM i
        """,
        unit=unit.id,
    )

    results = await asyncio.gather(
        outbox.release_due(sessionmaker, settings, SEND_ON, chunk=25),
        outbox.release_due(sessionmaker, settings, SEND_ON, chunk=25),
    )

    assert sum(r.queued for r in results) == 400
    assert sum(r.opened for r in results) == 400
    assert all(r.queued > 0 for r in results), "both workers took part"
    [(events, invitations)] = await fetch(
        sessionmaker,
        "SELECT count(*), count(DISTINCT invitation_id) FROM invitation_events WHERE to_status = 'open'",
    )
    assert events == invitations == 400
    assert await fetch(sessionmaker, "SELECT status, count(*) FROM messages GROUP BY status") == [
        ("queued", 400)
    ]


async def test_a_broken_template_leaves_messages_planned_until_it_is_fixed(
    sessionmaker: SM, settings: Settings, make_unit: MakeUnit, tmp_path: Path
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    _, message_id = await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id)
    broken = tmp_path / "invitation.long.sv.j2"
    broken.write_text("{% block subject %}Hej {{ first_name }}{% endblock %}{% block body %}x{% endblock %}")
    custom = settings.model_copy(update={"template_dir": tmp_path})

    result = await outbox.release_due(sessionmaker, custom, SEND_ON)
    assert (result.queued, result.failed) == (0, 0)
    assert "first_name" in result.template_errors[0]
    assert dict(await fetch(sessionmaker, "SELECT id, status FROM messages")) == {message_id: "planned"}

    broken.write_text(
        "{% block subject %}Hej{% endblock %}{% block body %}Välkommen till {{ unit_name }}{% endblock %}"
    )
    fixed = await outbox.release_due(sessionmaker, custom, SEND_ON)
    assert fixed.queued == 1
    [(body,)] = await fetch(sessionmaker, "SELECT body FROM messages")
    assert body == f"Välkommen till {unit.name}"


def test_a_run_for_another_day_writes_that_days_date_at_the_current_time() -> None:
    now = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    assert clock.moment(dt.date(2026, 11, 22), now) == now
    shifted = clock.moment(dt.date(2027, 3, 1), now).astimezone(STOCKHOLM)
    assert (shifted.date(), shifted.hour, shifted.minute) == (dt.date(2027, 3, 1), 10, 30)
    summer = clock.moment(dt.date(2027, 7, 1), now).astimezone(STOCKHOLM)
    assert (summer.date(), summer.hour) == (dt.date(2027, 7, 1), 10)  # wall-clock time kept over DST


async def test_an_operator_releases_due_letters_through_the_api(
    api: Any, operator: dict[str, str], sessionmaker: SM, make_unit: MakeUnit
) -> None:
    """`POST /v1/messages/release` does what `halsosamtal messages release` does, today's by default."""
    unit = await make_unit()
    await make_year(sessionmaker)
    today = clock.local_today()
    for _ in range(2):
        await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id, send_on=today)
    await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id)  # due in 2027

    future = await api.post(
        "/v1/messages/release", json={"as_of": (today + dt.timedelta(days=1)).isoformat()}, headers=operator
    )
    assert (future.status_code, future.json()["errors"][0]["pointer"]) == (422, "/as_of"), future.text

    released = await api.post("/v1/messages/release", json={}, headers=operator)
    assert released.status_code == 200, released.text
    body = released.json()
    assert (body["as_of"], body["queued"], body["opened"], body["template_errors"]) == (
        today.isoformat(),
        2,
        2,
        [],
    )
    statuses = await fetch(sessionmaker, "SELECT status FROM messages ORDER BY id")
    assert [r.status for r in statuses] == ["queued", "queued", "planned"]
    again = (await api.post("/v1/messages/release", json={}, headers=operator)).json()
    assert (again["queued"], again["opened"]) == (0, 0)
    run = await fetch(
        sessionmaker,
        "SELECT operation, action, resident_id FROM access_events WHERE operation = 'release_messages'",
    )
    assert [(r.action, r.resident_id) for r in run] == [("update", None), ("update", None)]
