"""Portals search, book, move, cancel and decline for their resident; the rules hold."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx

from halsosamtal.invitations.release import release_due
from halsosamtal.messaging.outbox import CONFIRMATION_KINDS
from tests.booking.support import (
    SM,
    MakeUnit,
    assert_slots_agree_with_appointments,
    centre,
    in_days,
    invitation_status,
    invited,
    messages,
    publish,
)
from tests.conftest import KeyMaker
from tests.messaging.factories import fetch, make_year

SEARCH = "/v1/portal/slots/search"
BOOK = "/v1/portal/bookings"
MAR2 = ("2027-03-02T08:00:00+01:00", "2027-03-02T08:45:00+01:00", "2027-03-02T09:30:00+01:00")


async def test_book_move_and_cancel_with_their_messages(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal", name="portal-1177")
    first, second, third = await publish(api, where, *MAR2)
    person = await invited(sessionmaker, where.unit)

    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": person.invitation_id}, headers=portal
    )
    assert found.status_code == 200, found.text
    assert [s["id"] for s in found.json()["items"]] == [first, second, third]
    assert found.json()["items"][0]["starts_at"] == MAR2[0]
    # A search shows the time as the booking will: with its resource.
    assert {"resource", "care_unit", "care_unit_name"} <= set(found.json()["items"][0])

    booked = await api.post(
        BOOK,
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": first},
        headers=portal,
    )
    assert booked.status_code == 201, booked.text
    appointment = booked.json()
    assert booked.headers["location"] == f"/v1/appointments/{appointment['id']}"
    assert appointment["resource"] == found.json()["items"][0]["resource"]
    assert (appointment["status"], appointment["slot_id"], appointment["starts_at"]) == (
        "booked",
        first,
        MAR2[0],
    )
    assert await invitation_status(sessionmaker, person.invitation_id) == "booked"
    # The time is no longer offered to anyone.
    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": person.invitation_id}, headers=portal
    )
    assert [s["id"] for s in found.json()["items"]] == [second, third]
    kinds = [(m.kind, m.status) for m in await messages(sessionmaker, person.invitation_id)]
    assert kinds == [
        ("invitation", "sent"),
        ("booking_confirmation", "planned"),
        ("appointment_reminder", "planned"),
    ]
    reminder = (await messages(sessionmaker, person.invitation_id))[2]
    assert reminder.send_on == dt.date(2027, 2, 28)  # two days before

    # The move takes the invitation's id like search and book do; another invitation's id is refused.
    wrong = await api.post(
        f"{BOOK}/{appointment['id']}/move",
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id + 1000, "slot_id": third},
        headers=portal,
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "appointment-of-other-invitation"), wrong.text
    assert wrong.json()["errors"][0]["pointer"] == "/invitation_id"
    moved = await api.post(
        f"{BOOK}/{appointment['id']}/move",
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": third},
        headers=portal,
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["id"], moved.json()["slot_id"]) == (appointment["id"], third)
    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": person.invitation_id}, headers=portal
    )
    assert [s["id"] for s in found.json()["items"]] == [first, second]
    rows = await messages(sessionmaker, person.invitation_id)
    assert [(m.kind, m.status) for m in rows] == [
        ("invitation", "sent"),
        ("booking_confirmation", "cancelled"),
        ("appointment_reminder", "cancelled"),
        ("booking_moved", "planned"),
        ("appointment_reminder", "planned"),
    ]
    assert rows[3].previous_appointment_at.isoformat() == "2027-03-02T07:00:00+00:00"
    assert rows[3].appointment_at.isoformat() == "2027-03-02T08:30:00+00:00"

    cancelled = await api.post(
        f"{BOOK}/{appointment['id']}/cancel", json={"personnummer": person.pnr}, headers=portal
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = await api.post(
        f"{BOOK}/{appointment['id']}/cancel", json={"personnummer": person.pnr}, headers=portal
    )
    assert again.json() == cancelled.json()
    assert await invitation_status(sessionmaker, person.invitation_id) == "open"
    rows = await messages(sessionmaker, person.invitation_id)
    assert [(m.kind, m.status) for m in rows][-2:] == [
        ("appointment_reminder", "cancelled"),
        ("booking_cancelled", "planned"),
    ]
    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": person.invitation_id}, headers=portal
    )
    assert [s["id"] for s in found.json()["items"]] == [first, second, third]

    # The history of the appointment: booked, moved, cancelled, by the portal.
    detail = await api.get(f"/v1/appointments/{appointment['id']}", headers=where.ehr)
    assert detail.status_code == 200
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in detail.json()["events"]] == [
        (None, "booked", "portal-1177"),
        ("booked", "booked", "portal-1177"),
        ("booked", "cancelled", "portal-1177"),
    ]
    assert detail.json()["events"][1]["previous_slot_id"] == first
    assert detail.json()["personnummer"] == f"{person.pnr[:8]}-{person.pnr[8:]}"  # YYYYMMDD-NNNC everywhere
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_confirmations_are_released_within_the_minute_with_the_time_written_out(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM, settings: object
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    await api.post(
        BOOK,
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": slot},
        headers=portal,
    )
    from halsosamtal.core.clock import local_today

    released = await release_due(sessionmaker, settings, local_today(), kinds=CONFIRMATION_KINDS)  # type: ignore[arg-type]
    assert released.queued == 1
    (body,) = await fetch(
        sessionmaker, "SELECT body, status FROM messages WHERE kind = 'booking_confirmation'"
    )
    assert body.status == "queued"
    assert "tisdag 2 mars 2027 kl. 08.00" in body.body
    # The appointment reminder waits for its day.
    (reminder,) = await fetch(sessionmaker, "SELECT status FROM messages WHERE kind = 'appointment_reminder'")
    assert reminder.status == "planned"


async def test_the_booking_rules(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where, elsewhere = await centre(make_unit, make_key), await centre(make_unit, make_key)
    portal = await make_key("portal")
    (ok,) = await publish(api, where, MAR2[0])
    (soon,) = await publish(api, where, in_days(3))
    (late,) = await publish(api, where, "2028-04-03T09:00:00+02:00")
    (other_unit,) = await publish(api, elsewhere, MAR2[0])
    (withdrawn,) = await publish(api, where, MAR2[1])
    await api.delete(f"{where.slots_url}/{withdrawn}", headers=where.ehr)
    person, neighbour = await invited(sessionmaker, where.unit), await invited(sessionmaker, where.unit)

    async def book(who: object, slot: int, invitation: int | None = None) -> httpx.Response:
        assert hasattr(who, "pnr")
        return await api.post(
            BOOK,
            json={"personnummer": who.pnr, "invitation_id": invitation or who.invitation_id, "slot_id": slot},  # type: ignore[attr-defined]
            headers=portal,
        )

    expected = {
        soon: (422, "slot-too-soon"),
        late: (422, "slot-after-valid-until"),
        other_unit: (422, "slot-at-other-unit"),
        withdrawn: (409, "slot-withdrawn"),
        999_999: (404, "slot-not-found"),
    }
    for slot, (status, code) in expected.items():
        response = await book(person, slot)
        assert (response.status_code, response.json()["code"]) == (status, code), response.text
    # Another resident's invitation is not there at all for this resident.
    response = await book(person, ok, invitation=neighbour.invitation_id)
    assert (response.status_code, response.json()["code"]) == (404, "no-invitation")
    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": neighbour.invitation_id}, headers=portal
    )
    assert found.status_code == 404
    # Search offers only what can be booked.
    found = await api.post(
        SEARCH, json={"personnummer": person.pnr, "invitation_id": person.invitation_id}, headers=portal
    )
    assert [s["id"] for s in found.json()["items"]] == [ok]

    assert (await book(person, ok)).status_code == 201
    taken = await book(neighbour, ok)
    assert (taken.status_code, taken.json()["code"]) == (409, "slot-taken")
    twice = await book(person, ok)
    assert (twice.status_code, twice.json()["code"]) == (409, "already-booked")
    # A portal cannot move or cancel another resident's appointment.
    (appointment,) = await fetch(sessionmaker, "SELECT id FROM appointments")
    for action, body in (("move", {"slot_id": ok}), ("cancel", {})):
        response = await api.post(
            f"{BOOK}/{appointment.id}/{action}", json={"personnummer": neighbour.pnr, **body}, headers=portal
        )
        assert response.status_code == 404, response.text
    # Only portals book.
    assert (
        await api.post(
            BOOK, json={"personnummer": person.pnr, "invitation_id": 1, "slot_id": ok}, headers=where.ehr
        )
    ).status_code == 403
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_many_racing_for_one_time_exactly_one_wins(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    people = [await invited(sessionmaker, where.unit) for _ in range(25)]
    responses = await asyncio.gather(
        *(
            api.post(
                BOOK,
                json={"personnummer": p.pnr, "invitation_id": p.invitation_id, "slot_id": slot},
                headers=portal,
            )
            for p in people
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 24
    assert {r.json()["code"] for r in responses if r.status_code == 409} == {"slot-taken"}
    rows = await fetch(sessionmaker, "SELECT count(*) AS n FROM appointments WHERE slot_id = :s", s=slot)
    assert rows[0].n == 1
    booked = await fetch(sessionmaker, "SELECT count(*) AS n FROM invitations WHERE status = 'booked'")
    assert booked[0].n == 1
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_a_move_to_a_taken_time_changes_nothing(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    a, b = await publish(api, where, *MAR2[:2])
    one, two = await invited(sessionmaker, where.unit), await invited(sessionmaker, where.unit)
    first = await api.post(
        BOOK, json={"personnummer": one.pnr, "invitation_id": one.invitation_id, "slot_id": a}, headers=portal
    )
    await api.post(
        BOOK, json={"personnummer": two.pnr, "invitation_id": two.invitation_id, "slot_id": b}, headers=portal
    )
    refused = await api.post(
        f"{BOOK}/{first.json()['id']}/move", json={"personnummer": one.pnr, "slot_id": b}, headers=portal
    )
    assert (refused.status_code, refused.json()["code"]) == (409, "slot-taken")
    rows = await fetch(sessionmaker, "SELECT invitation_id, slot_id, status FROM appointments ORDER BY id")
    assert [(r.slot_id, r.status) for r in rows] == [(a, "booked"), (b, "booked")]
    assert len(await messages(sessionmaker, one.invitation_id)) == 3  # no moved message
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_declining_a_booked_invitation_frees_the_time(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    await api.post(
        BOOK,
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": slot},
        headers=portal,
    )
    mine = await api.post("/v1/portal/invitation", json={"personnummer": person.pnr}, headers=portal)
    assert mine.json()["appointment"]["slot_id"] == slot
    declined = await api.post(
        "/v1/portal/invitation/decline",
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id},
        headers=portal,
    )
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    (appointment,) = await fetch(sessionmaker, "SELECT status FROM appointments")
    assert appointment.status == "cancelled"
    assert [(m.kind, m.status) for m in await messages(sessionmaker, person.invitation_id)][-1] == (
        "booking_cancelled",
        "planned",
    )
    events = await fetch(
        sessionmaker,
        "SELECT to_status FROM invitation_events WHERE invitation_id = :i ORDER BY id",
        i=person.invitation_id,
    )
    assert [e.to_status for e in events] == ["planned", "booked", "open", "declined"]
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_a_booking_stops_the_invitations_reminders(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    async with sessionmaker() as s, s.begin():
        from sqlalchemy import text

        await s.execute(
            text(
                "INSERT INTO messages (resident_id, invitation_id, kind, sequence, send_on, status) "
                "VALUES (:r, :i, 'reminder', 1, '2027-03-29', 'planned')"
            ),
            {"r": person.person.id, "i": person.invitation_id},
        )
    await api.post(
        BOOK,
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": slot},
        headers=portal,
    )
    (reminder,) = await fetch(sessionmaker, "SELECT status FROM messages WHERE kind = 'reminder'")
    assert reminder.status == "cancelled"


async def test_a_cancelled_booking_made_before_the_letter_plans_the_letter_again(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    from tests.messaging.factories import make_invitation, resident

    person = await resident(sessionmaker, where.unit.id)
    invitation_id, _ = await make_invitation(sessionmaker, person, where.unit.id)  # planned, letter unsent
    booked = await api.post(
        BOOK,
        json={"personnummer": person.personnummer, "invitation_id": invitation_id, "slot_id": slot},
        headers=portal,
    )
    assert booked.status_code == 201, booked.text
    letters = await fetch(sessionmaker, "SELECT status FROM messages WHERE kind = 'invitation' ORDER BY id")
    assert [m.status for m in letters] == ["cancelled"]
    await api.post(
        f"{BOOK}/{booked.json()['id']}/cancel", json={"personnummer": person.personnummer}, headers=portal
    )
    assert await invitation_status(sessionmaker, invitation_id) == "planned"
    letters = await fetch(
        sessionmaker, "SELECT status, send_on FROM messages WHERE kind = 'invitation' ORDER BY id"
    )
    assert [m.status for m in letters] == ["cancelled", "planned"]


async def test_out_of_range_ids_and_days_are_a_422_not_a_500(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    huge = 2**63
    assert (await api.get(f"/v1/appointments/{huge}", headers=where.ehr)).status_code == 422
    response = await api.post(
        BOOK, json={"personnummer": "198701010228", "invitation_id": huge, "slot_id": 1}, headers=portal
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "/invitation_id"
    far = await api.get(
        where.slots_url, params={"first_day": "2027-01-01", "last_day": "9999-12-31"}, headers=where.ehr
    )
    assert (far.status_code, far.json()["errors"][0]["pointer"]) == (422, "/last_day")
    slot = await api.post(
        where.slots_url,
        json={"slots": [{"starts_at": "9999-12-31T22:00:00-05:00", "ends_at": "9999-12-31T22:45:00-05:00"}]},
        headers=where.ehr,
    )
    assert slot.status_code == 422


async def test_two_residents_swapping_times_at_once_neither_deadlocks_nor_double_books(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    a, b = await publish(api, where, *MAR2[:2])
    one, two = await invited(sessionmaker, where.unit), await invited(sessionmaker, where.unit)
    first = await api.post(
        BOOK, json={"personnummer": one.pnr, "invitation_id": one.invitation_id, "slot_id": a}, headers=portal
    )
    second = await api.post(
        BOOK, json={"personnummer": two.pnr, "invitation_id": two.invitation_id, "slot_id": b}, headers=portal
    )
    for _ in range(5):
        answers = await asyncio.gather(
            api.post(
                f"{BOOK}/{first.json()['id']}/move",
                json={"personnummer": one.pnr, "slot_id": b},
                headers=portal,
            ),
            api.post(
                f"{BOOK}/{second.json()['id']}/move",
                json={"personnummer": two.pnr, "slot_id": a},
                headers=portal,
            ),
        )
        assert [r.status_code for r in answers] == [409, 409]
    rows = await fetch(sessionmaker, "SELECT slot_id FROM appointments ORDER BY id")
    assert [r.slot_id for r in rows] == [a, b]
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_only_times_within_the_invitations_programme_year_are_offered_or_booked(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    """A resident with next year's invitation, still planned, may not book a time this December:
    its unit could never report that talk (a result must be held within the invitation's year)."""
    from halsosamtal.core.clock import local_today
    from tests.messaging.factories import make_invitation, resident

    next_year = local_today().year + 1
    await make_year(sessionmaker, next_year, valid_until=dt.date(next_year + 1, 3, 31))
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    person = await resident(sessionmaker, where.unit.id)
    invitation_id, _ = await make_invitation(
        sessionmaker,
        person,
        where.unit.id,
        year=next_year,
        send_on=dt.date(next_year, 1, 5),
        valid_until=dt.date(next_year + 1, 3, 31),
    )
    december = f"{next_year - 1}-12-30T09:00:00+01:00"
    january = f"{next_year}-01-12T09:00:00+01:00"
    before, inside = (await publish(api, where, december))[0], (await publish(api, where, january))[0]
    who = {"personnummer": person.personnummer, "invitation_id": invitation_id}

    found = await api.post(SEARCH, json=who, headers=portal)
    assert found.status_code == 200, found.text
    assert [s["id"] for s in found.json()["items"]] == [inside]
    refused = await api.post(BOOK, json={**who, "slot_id": before}, headers=portal)
    assert (refused.status_code, refused.json()["code"]) == (422, "slot-before-valid-from"), refused.text
    assert f"{next_year}-01-01" in refused.json()["detail"]
    booked = await api.post(BOOK, json={**who, "slot_id": inside}, headers=portal)
    assert booked.status_code == 201, booked.text
