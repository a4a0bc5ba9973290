"""The centre cancels times and records attendance; Idempotency-Key replays; departures free times."""

from __future__ import annotations

import datetime as dt

import httpx

from halsosamtal.invitations import lifecycle
from tests.booking.support import (
    SM,
    MakeUnit,
    assert_slots_agree_with_appointments,
    centre,
    invitation_status,
    invited,
    messages,
    publish,
)
from tests.conftest import KeyMaker
from tests.messaging.factories import execute, fetch, make_year

BOOK = "/v1/portal/bookings"
MAR2 = ("2027-03-02T08:00:00+01:00", "2027-03-02T08:45:00+01:00")


async def _booked(api: httpx.AsyncClient, portal: dict[str, str], person: object, slot: int) -> int:
    response = await api.post(
        BOOK,
        json={"personnummer": person.pnr, "invitation_id": person.invitation_id, "slot_id": slot},  # type: ignore[attr-defined]
        headers=portal,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def test_a_booked_time_is_withdrawn_only_after_the_centre_cancels_it(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    appointment = await _booked(api, portal, person, slot)

    refused = await api.delete(f"{where.slots_url}/{slot}", headers=where.ehr)
    assert (refused.status_code, refused.json()["code"]) == (409, "slot-booked")
    assert refused.json()["appointment_id"] == appointment

    cancelled = await api.post(
        f"/v1/appointments/{appointment}/cancel", json={"reason": "the nurse is ill"}, headers=where.ehr
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["events"][-1]["reason"] == "cancelled by the care unit: the nurse is ill"
    assert await invitation_status(sessionmaker, person.invitation_id) == "open"
    assert [(m.kind, m.status) for m in await messages(sessionmaker, person.invitation_id)][-1] == (
        "booking_cancelled",
        "planned",
    )
    assert (await api.delete(f"{where.slots_url}/{slot}", headers=where.ehr)).json()["status"] == "withdrawn"
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_attendance_and_no_show(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    a, b = await publish(api, where, *MAR2)
    came, stayed_away = await invited(sessionmaker, where.unit), await invited(sessionmaker, where.unit)
    first = await _booked(api, portal, came, a)
    second = await _booked(api, portal, stayed_away, b)

    attended = await api.post(
        f"/v1/appointments/{first}/attendance", json={"outcome": "attended"}, headers=where.ehr
    )
    assert attended.status_code == 200, attended.text
    assert attended.json()["status"] == "attended"
    assert await invitation_status(sessionmaker, came.invitation_id) == "attended"
    again = await api.post(
        f"/v1/appointments/{first}/attendance", json={"outcome": "attended"}, headers=where.ehr
    )
    assert again.json() == attended.json()
    other = await api.post(
        f"/v1/appointments/{first}/attendance", json={"outcome": "no_show"}, headers=where.ehr
    )
    assert (other.status_code, other.json()["code"]) == (409, "attendance-recorded")

    early = await api.post(
        f"/v1/appointments/{second}/attendance", json={"outcome": "no_show"}, headers=where.ehr
    )
    assert (early.status_code, early.json()["code"]) == (409, "appointment-not-started")
    # The time comes and goes (moved into the past here), and the resident stays away.
    await execute(
        sessionmaker,
        "UPDATE slots SET starts_at = now() - interval '2 hours', ends_at = now() - interval '75 minutes' "
        "WHERE id = :id",
        id=b,
    )
    portal_cancel = await api.post(
        f"{BOOK}/{second}/cancel", json={"personnummer": stayed_away.pnr}, headers=portal
    )
    assert (portal_cancel.status_code, portal_cancel.json()["code"]) == (409, "appointment-started")
    no_show = await api.post(
        f"/v1/appointments/{second}/attendance", json={"outcome": "no_show"}, headers=where.ehr
    )
    assert no_show.json()["status"] == "no_show"
    # The invitation is open again: the resident may book anew; the no-show stays on record.
    assert await invitation_status(sessionmaker, stayed_away.invitation_id) == "open"
    (c,) = await publish(api, where, "2027-03-03T08:00:00+01:00")
    await _booked(api, portal, stayed_away, c)
    rows = await fetch(
        sessionmaker,
        "SELECT status FROM appointments WHERE invitation_id = :i ORDER BY id",
        i=stayed_away.invitation_id,
    )
    assert [r.status for r in rows] == ["no_show", "booked"]
    # The no-show's reminder no longer goes out.
    kinds = [
        (m.kind, m.status, m.appointment_id) for m in await messages(sessionmaker, stayed_away.invitation_id)
    ]
    assert ("appointment_reminder", "cancelled", second) in kinds

    history = (await api.get(f"/v1/appointments/{second}", headers=where.ehr)).json()["events"]
    assert [(e["from_status"], e["to_status"]) for e in history] == [(None, "booked"), ("booked", "no_show")]
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_who_is_coming_is_for_the_units_own_clients(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where, elsewhere = await centre(make_unit, make_key), await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    appointment = await _booked(api, portal, person, slot)
    day = {"first_day": "2027-03-02", "last_day": "2027-03-02"}
    listed = await api.get(f"/v1/care-units/{where.unit.hsa_id}/appointments", params=day, headers=where.ehr)
    assert [(x["id"], x["personnummer"]) for x in listed.json()["items"]] == [
        (appointment, f"{person.pnr[:8]}-{person.pnr[8:]}")
    ]
    # Another unit's client is answered as if the appointment did not exist: the same 404, no
    # unit named, so it learns nothing of who is booked where.
    missing = await api.get("/v1/appointments/999999", headers=elsewhere.ehr)
    other = await api.get(f"/v1/appointments/{appointment}", headers=elsewhere.ehr)
    assert (other.status_code, other.json()["code"]) == (404, missing.json()["code"])
    assert where.unit.hsa_id not in other.text
    for action, body in (("cancel", {"reason": "x"}), ("attendance", {"outcome": "attended"})):
        response = await api.post(
            f"/v1/appointments/{appointment}/{action}", json=body, headers=elsewhere.ehr
        )
        assert response.status_code == 404
        assert where.unit.hsa_id not in response.text
    assert (await api.get(f"/v1/appointments/{appointment}", headers=portal)).status_code == 403


async def test_an_idempotency_key_replays_the_first_answer(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal, other_portal = await make_key("portal"), await make_key("portal")
    a, b = await publish(api, where, *MAR2)
    one, two = await invited(sessionmaker, where.unit), await invited(sessionmaker, where.unit)
    body = {"personnummer": one.pnr, "invitation_id": one.invitation_id, "slot_id": a}
    key = {**portal, "Idempotency-Key": "4f1c9a1e-booking-1"}

    first = await api.post(BOOK, json=body, headers=key)
    replay = await api.post(BOOK, json=body, headers=key)
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert (await fetch(sessionmaker, "SELECT count(*) AS n FROM appointments"))[0].n == 1
    assert (
        len([m for m in await messages(sessionmaker, one.invitation_id) if m.kind == "booking_confirmation"])
        == 1
    )

    reused = await api.post(BOOK, json={**body, "slot_id": b}, headers=key)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency-key-reused")
    # Keys are per client: another portal's same key is its own.
    theirs = await api.post(
        BOOK,
        json={"personnummer": two.pnr, "invitation_id": two.invitation_id, "slot_id": a},
        headers={**other_portal, "Idempotency-Key": "4f1c9a1e-booking-1"},
    )
    assert (theirs.status_code, theirs.json()["code"]) == (409, "slot-taken")

    # A refusal is an answer too: replayed even after the time has become free.
    await api.post(f"{BOOK}/{first.json()['id']}/cancel", json={"personnummer": one.pnr}, headers=portal)
    refused_again = await api.post(
        BOOK,
        json={"personnummer": two.pnr, "invitation_id": two.invitation_id, "slot_id": a},
        headers={**other_portal, "Idempotency-Key": "4f1c9a1e-booking-1"},
    )
    assert (refused_again.status_code, refused_again.json()["code"]) == (409, "slot-taken")
    assert refused_again.headers["idempotent-replayed"] == "true"
    assert (await fetch(sessionmaker, "SELECT count(*) AS n FROM appointments WHERE status = 'booked'"))[
        0
    ].n == 0

    malformed = await api.post(BOOK, json=body, headers={**portal, "Idempotency-Key": "bad key with spaces"})
    assert malformed.status_code == 422
    assert malformed.json()["errors"][0]["location"] == "header"


async def test_a_resident_who_dies_has_their_time_freed(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    await make_year(sessionmaker)
    where = await centre(make_unit, make_key)
    portal = await make_key("portal")
    (slot,) = await publish(api, where, MAR2[0])
    person = await invited(sessionmaker, where.unit)
    appointment = await _booked(api, portal, person, slot)
    await execute(
        sessionmaker, "UPDATE residents SET deceased_on = '2027-02-01' WHERE id = :id", id=person.person.id
    )
    await lifecycle.withdraw_all(sessionmaker, dt.date(2027, 2, 2), actor="worker")
    assert await invitation_status(sessionmaker, person.invitation_id) == "withdrawn"
    slot_now = (await api.get(f"{where.slots_url}/{slot}", headers=where.ehr)).json()
    assert slot_now["status"] == "free"
    history = (await api.get(f"/v1/appointments/{appointment}", headers=where.ehr)).json()["events"]
    assert history[-1]["to_status"] == "cancelled"
    assert "died" in history[-1]["reason"]
    assert {
        m.status for m in await messages(sessionmaker, person.invitation_id) if m.kind != "invitation"
    } == {"cancelled"}
    await assert_slots_agree_with_appointments(sessionmaker)
