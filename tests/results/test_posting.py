"""EHR adapters post, re-post, amend and retract results; the portal reads its resident's."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.units.models import CareUnit
from tests.booking.support import assert_slots_agree_with_appointments
from tests.conftest import KeyMaker
from tests.factories import make_resident
from tests.messaging.factories import execute, fetch, make_invitation, make_year

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
YEAR = 2026  # a year that has begun, so talks can have been held
HELD = "2026-11-10T09:00:00+01:00"


def document(invitation_id: int, **changes: Any) -> dict[str, Any]:
    """A complete, plausible result: the paper's worked example (a 50-year-old smoker, SBP 140,
    total cholesterol 6.3, HDL 1.4)."""
    body: dict[str, Any] = {
        "invitation_id": invitation_id,
        "external_id": "JRN-2026-0001",
        "held_at": HELD,
        "practitioner_hsa_id": "SE2321000131-P000000000042",
        "measurements": {
            "systolic": 140,
            "diastolic": 85,
            "height": 180,
            "weight": 81,
            "waist": 94,
            "fasting_glucose": 5.4,
            "total_cholesterol": 6.3,
            "hdl": 1.4,
            "known_diabetes": False,
            "known_cvd": False,
        },
        "habits": {
            "tobacco": {"smoking": "daily", "snus": "never", "action": "advisory_talk"},
            "alcohol": {"audit_c": 3, "action": "none"},
            "physical_activity": {"exercise_minutes": 30, "everyday_minutes": 60, "action": "simple_advice"},
            "diet": {"index": 7, "action": "none"},
        },
        "referrals": ["tobacco_cessation"],
    }
    body.update(changes)
    return body


async def _setup(
    sm: SM, make_unit: MakeUnit, make_key: KeyMaker, *, sex: str = "M", age: int = 50
) -> tuple[CareUnit, dict[str, str], int, str]:
    await make_year(sm, YEAR, valid_until=dt.date(2027, 3, 31))
    unit = await make_unit()
    ehr = await make_key("ehr", units=[unit.hsa_id], name="journal-adapter")
    person = await make_resident(sm, dt.date(YEAR - age, 6, 1), sex=sex, care_unit_id=unit.id)
    invitation_id, _ = await make_invitation(
        sm, person, unit.id, year=YEAR, age=age, sent_on=dt.date(2026, 9, 1), valid_until=dt.date(2027, 3, 31)
    )
    return unit, ehr, invitation_id, person.personnummer


async def test_a_posted_result_completes_the_invitation_with_score2_and_findings(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    response = await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    assert response.status_code == 201, response.text
    result = response.json()
    assert response.headers["location"] == f"/v1/results/{result['id']}"
    assert result["change"] == "created"
    assert result["version"] == 1
    # What was posted reads back as posted: JSON numbers, not strings.
    assert result["measurements"]["systolic"] == 140
    assert result["measurements"]["fasting_glucose"] == 5.4
    derived = result["derived"]
    assert derived["score2"] == {
        "applies": True,
        "risk_percent": 8.11,
        "category": "high",  # 50-69: 5 to <10 %
        "not_applicable": None,
        "explanation": None,
        "age_used": 50,
    }
    assert derived["bmi"] == 25.0  # 81 / 1.8^2 = 24.999...
    assert derived["tobacco"] == {"finding": "unhealthy", "action": "advisory_talk"}
    assert derived["alcohol"]["finding"] == "healthy"
    assert derived["physical_activity"]["finding"] == "unhealthy"  # 30 * 2 + 60 = 120 < 150
    assert derived["activity_minutes"] == 120
    assert derived["score2_version"].startswith("score2-2021-moderate")
    assert derived["habits_version"] == "socialstyrelsen-2024/1"
    (invitation,) = await fetch(sessionmaker, "SELECT status FROM invitations WHERE id = :i", i=invitation_id)
    assert invitation.status == "completed"


async def test_a_woman_gets_her_own_coefficients(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key, sex="F")
    response = await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    assert response.json()["derived"]["score2"]["risk_percent"] == 5.23
    assert response.json()["derived"]["score2"]["category"] == "high"


async def test_score2_says_why_it_does_not_apply(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    body = document(invitation_id)
    body["measurements"]["known_diabetes"] = True
    response = await api.post("/v1/results", json=body, headers=ehr)
    score = response.json()["derived"]["score2"]
    assert (score["applies"], score["risk_percent"], score["not_applicable"]) == (False, None, "diabetes")
    assert "SCORE2-Diabetes" in score["explanation"] or "diabetes" in score["explanation"].lower()


async def test_re_posting_is_idempotent_and_new_content_is_an_amendment(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    first = await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    same = copy.deepcopy(document(invitation_id))
    same["measurements"]["systolic"] = 140.0  # the same reading written another way
    again = await api.post("/v1/results", json=same, headers=ehr)
    assert again.status_code == 200
    assert again.json()["change"] == "unchanged"
    assert {k: v for k, v in again.json().items() if k != "change"} == {
        k: v for k, v in first.json().items() if k != "change"
    }

    amended_body = document(invitation_id)
    amended_body["measurements"]["systolic"] = 150
    amended = await api.post("/v1/results", json=amended_body, headers=ehr)
    assert amended.status_code == 200
    assert (amended.json()["change"], amended.json()["version"]) == ("amended", 2)
    assert (
        amended.json()["derived"]["score2"]["risk_percent"]
        != first.json()["derived"]["score2"]["risk_percent"]
    )

    result_id = first.json()["id"]
    history = (await api.get(f"/v1/results/{result_id}/history", headers=ehr)).json()
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert history["versions"][0]["measurements"]["systolic"] == 140
    assert history["versions"][1]["measurements"]["systolic"] == 150
    assert [(e["kind"], e["version"]) for e in history["events"]] == [("completed", 1), ("amended", 2)]
    rows = await fetch(sessionmaker, "SELECT count(*) AS n FROM results")
    assert rows[0].n == 1

    replayed = await api.post("/v1/results", json=amended_body, headers={**ehr, "Idempotency-Key": "k-1"})
    replay = await api.post("/v1/results", json=amended_body, headers={**ehr, "Idempotency-Key": "k-1"})
    assert replay.json() == replayed.json()
    assert replay.headers["idempotent-replayed"] == "true"


async def test_implausible_and_malformed_values_are_refused_with_the_field_and_range(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    body = document(invitation_id)
    body["measurements"].update(systolic=300, hdl=0.1)
    response = await api.post("/v1/results", json=body, headers=ehr)
    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "implausible-values"
    assert {e["pointer"] for e in problem["errors"]} == {"/measurements/systolic", "/measurements/hdl"}
    assert "60-260 mmHg" in problem["detail"]
    assert "0.2-5.0 mmol/L" in problem["detail"]

    body = document(invitation_id)
    body["measurements"].update(systolic=120, diastolic=130)
    response = await api.post("/v1/results", json=body, headers=ehr)
    assert response.json()["errors"][0]["pointer"] == "/measurements/diastolic"

    malformed = [
        ({"measurements": {**document(1)["measurements"], "weight": "heavy"}}, "/measurements/weight"),
        ({"measurements": {**document(1)["measurements"], "hdl": 1.234}}, "/measurements/hdl"),
        (
            {"habits": {**document(1)["habits"], "alcohol": {"audit_c": 13, "action": "none"}}},
            "/habits/alcohol/audit_c",
        ),
        ({"referrals": ["massage"]}, "/referrals/0"),
        ({"held_at": "2026-11-10T09:00:00"}, "/held_at"),
        ({"unknown": 1}, "/unknown"),
    ]
    for change, pointer in malformed:
        response = await api.post("/v1/results", json=document(invitation_id, **change), headers=ehr)
        assert response.status_code == 422, change
        assert pointer in [e["pointer"] for e in response.json()["errors"]], response.json()
    no_glucose = document(invitation_id)
    del no_glucose["measurements"]["fasting_glucose"]
    response = await api.post("/v1/results", json=no_glucose, headers=ehr)
    assert response.status_code == 422
    assert "fasting_glucose" in response.json()["detail"]
    future = await api.post(
        "/v1/results", json=document(invitation_id, held_at="2099-01-01T09:00:00+01:00"), headers=ehr
    )
    assert (future.status_code, future.json()["field"]) == (422, "held_at")
    assert (await fetch(sessionmaker, "SELECT count(*) AS n FROM results"))[0].n == 0


async def test_only_the_inviting_units_ehr_may_post(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    other = await make_unit()
    other_ehr = await make_key("ehr", units=[other.hsa_id])
    # Another unit's invitation is answered as if it did not exist: no unit named.
    refused = await api.post("/v1/results", json=document(invitation_id), headers=other_ehr)
    assert (refused.status_code, refused.json()["code"]) == (404, "invitation-not-found")
    assert "SE" not in refused.json()["detail"]
    operator = await make_key("operator")
    assert (await api.post("/v1/results", json=document(invitation_id), headers=operator)).status_code == 403
    posted = await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    elsewhere = await api.get(f"/v1/results/{posted.json()['id']}", headers=other_ehr)
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "result-not-found")
    assert (await api.get(f"/v1/results/{posted.json()['id']}", headers=operator)).status_code == 200
    missing = await api.post("/v1/results", json=document(999_999), headers=ehr)
    assert missing.status_code == 404


async def test_one_result_per_invitation_and_external_ids_are_the_units_own(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    unit, ehr, invitation_id, _ = await _setup(sessionmaker, make_unit, make_key)
    await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    second = await api.post("/v1/results", json=document(invitation_id, external_id="JRN-OTHER"), headers=ehr)
    assert (second.status_code, second.json()["code"]) == (409, "result-exists")
    someone = await make_resident(sessionmaker, dt.date(1976, 2, 1), sex="F", care_unit_id=unit.id)
    their_invitation, _ = await make_invitation(
        sessionmaker,
        someone,
        unit.id,
        year=YEAR,
        age=50,
        sent_on=dt.date(2026, 9, 1),
        valid_until=dt.date(2027, 3, 31),
    )
    reused = await api.post("/v1/results", json=document(their_invitation), headers=ehr)
    assert (reused.status_code, reused.json()["code"]) == (409, "external-id-in-use")
    found = await api.get(
        f"/v1/care-units/{unit.hsa_id}/results", params={"external_id": "JRN-2026-0001"}, headers=ehr
    )
    assert found.json()["invitation_id"] == invitation_id


async def test_retraction_keeps_the_record_and_reverses_the_completion(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    _, ehr, invitation_id, pnr = await _setup(sessionmaker, make_unit, make_key)
    posted = (await api.post("/v1/results", json=document(invitation_id), headers=ehr)).json()
    retracted = await api.post(
        f"/v1/results/{posted['id']}/retract", json={"reason": "entered for the wrong patient"}, headers=ehr
    )
    assert retracted.status_code == 200
    assert retracted.json()["status"] == "retracted"
    twice = await api.post(f"/v1/results/{posted['id']}/retract", json={"reason": "again"}, headers=ehr)
    assert twice.json() == retracted.json()
    (invitation,) = await fetch(sessionmaker, "SELECT status FROM invitations WHERE id = :i", i=invitation_id)
    assert invitation.status == "open"
    history = (await api.get(f"/v1/results/{posted['id']}/history", headers=ehr)).json()
    assert [e["kind"] for e in history["events"]] == ["completed", "retracted"]
    portal = await make_key("portal")
    assert (
        await api.post("/v1/portal/results", json={"personnummer": pnr}, headers=portal)
    ).status_code == 404

    again = await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    assert (again.status_code, again.json()["change"], again.json()["version"]) == (201, "completed_again", 1)
    events = (await api.get(f"/v1/results/{posted['id']}/history", headers=ehr)).json()["events"]
    assert [e["kind"] for e in events] == ["completed", "retracted", "completed"]


async def test_a_result_marks_the_booked_time_attended(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    unit, ehr, invitation_id, pnr = await _setup(sessionmaker, make_unit, make_key)
    await execute(sessionmaker, "UPDATE programme_years SET booking_lead_days = 0 WHERE year = :y", y=YEAR)
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
    slots = await api.post(
        f"/v1/care-units/{unit.hsa_id}/slots",
        json={
            "slots": [
                {"starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(minutes=45)).isoformat()}
            ]
        },
        headers=ehr,
    )
    assert slots.status_code == 200, slots.text
    (slot,) = await fetch(sessionmaker, "SELECT id FROM slots")
    portal = await make_key("portal")
    booked = await api.post(
        "/v1/portal/bookings",
        json={"personnummer": pnr, "invitation_id": invitation_id, "slot_id": slot.id},
        headers=portal,
    )
    assert booked.status_code == 201, booked.text
    body = document(None, appointment_id=booked.json()["id"])
    del body["invitation_id"]
    posted = await api.post("/v1/results", json=body, headers=ehr)
    assert posted.status_code == 201, posted.text
    assert posted.json()["appointment_id"] == booked.json()["id"]
    (appointment,) = await fetch(sessionmaker, "SELECT status FROM appointments")
    assert appointment.status == "attended"
    (invitation,) = await fetch(sessionmaker, "SELECT status FROM invitations")
    assert invitation.status == "completed"
    # Retracted (entered for the wrong patient): the time, which has not come yet, is the
    # resident's again, with its reminder, and they can still cancel it.
    await api.post(
        f"/v1/results/{posted.json()['id']}/retract", json={"reason": "wrong patient"}, headers=ehr
    )
    (invitation,) = await fetch(sessionmaker, "SELECT status FROM invitations")
    assert invitation.status == "booked"
    (appointment,) = await fetch(sessionmaker, "SELECT status FROM appointments")
    assert appointment.status == "booked"
    cancelled = await api.post(
        f"/v1/portal/bookings/{booked.json()['id']}/cancel", json={"personnummer": pnr}, headers=portal
    )
    assert cancelled.status_code == 200, cancelled.text
    (invitation,) = await fetch(sessionmaker, "SELECT status FROM invitations")
    assert invitation.status == "open"
    await assert_slots_agree_with_appointments(sessionmaker)


async def test_the_portal_reads_its_residents_summary_in_plain_words(
    api: httpx.AsyncClient, make_unit: MakeUnit, make_key: KeyMaker, sessionmaker: SM
) -> None:
    unit, ehr, invitation_id, pnr = await _setup(sessionmaker, make_unit, make_key)
    await api.post("/v1/results", json=document(invitation_id), headers=ehr)
    portal = await make_key("portal")
    sv = await api.post("/v1/portal/results", json={"personnummer": pnr}, headers=portal)
    assert sv.status_code == 200, sv.text
    summary = sv.json()
    assert summary["held_on"] == "2026-11-10"
    assert summary["care_unit_name"] == unit.name
    assert "8,1 procent" in summary["risk"]
    assert "hög" in summary["risk"]
    assert "Du röker eller snusar dagligen." in summary["findings"]
    assert "Du fick ett rådgivande samtal om tobak." in summary["advice"]
    assert summary["referrals"] == ["Du har remitterats till tobaksavvänjning."]
    en = (
        await api.post("/v1/portal/results", json={"personnummer": pnr, "language": "en"}, headers=portal)
    ).json()
    assert "8.1 %" in en["risk"]
    someone_else = await make_resident(sessionmaker, dt.date(1976, 3, 3), care_unit_id=unit.id)
    assert (
        await api.post("/v1/portal/results", json={"personnummer": someone_else.personnummer}, headers=portal)
    ).status_code == 404
