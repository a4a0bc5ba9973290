"""The portal: the resident's own invitation and declining it, and nobody else's."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.residents.models import Resident
from halsosamtal.residents.personnummer import format_long
from halsosamtal.units.models import CareUnit
from tests.conftest import KeyMaker
from tests.messaging.factories import fetch, make_invitation, make_year, resident
from tests.tokens import TestIdp, sign_portal_calls

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
LOOKUP = "/v1/portal/invitation"
DECLINE = "/v1/portal/invitation/decline"


@pytest.fixture
async def client(app: FastAPI, idp: TestIdp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        event_hooks={"request": [sign_portal_calls(idp)]},
    ) as c:
        yield c


@pytest.fixture
async def portal(make_key: KeyMaker) -> dict[str, str]:
    return await make_key("portal", name="portal-1177")


async def _invited(sm: SM, unit: CareUnit, **kw: Any) -> tuple[Resident, int, int]:
    person = await resident(sm, unit.id)
    invitation_id, message_id = await make_invitation(sm, person, unit.id, **kw)
    return person, invitation_id, message_id


async def test_the_resident_sees_their_own_invitation(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, portal: dict[str, str]
) -> None:
    unit = await make_unit(
        name="Vårdcentralen Andersberg", visiting_address="Andersbergsvägen 1, Halmstad", phone="035-13 10 00"
    )
    await make_year(sessionmaker)
    person, invitation_id, _ = await _invited(sessionmaker, unit, sent_on=dt.date(2027, 3, 1))
    response = await client.post(
        LOOKUP, json={"personnummer": format_long(person.personnummer)}, headers=portal
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": invitation_id,
        "year": 2027,
        "age": 40,
        "status": "open",
        "care_unit_name": "Vårdcentralen Andersberg",
        "care_unit": unit.hsa_id,
        "care_unit_visiting_address": "Andersbergsvägen 1, Halmstad",
        "care_unit_phone": "035-13 10 00",
        "valid_until": "2028-03-31",
        "appointment": None,
    }
    short = person.personnummer[2:8] + "-" + person.personnummer[8:]  # the 10-digit form works too
    assert (await client.post(LOOKUP, json={"personnummer": short}, headers=portal)).json()[
        "id"
    ] == invitation_id


async def test_no_current_invitation_is_404_and_a_bad_number_422(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, portal: dict[str, str], idp: TestIdp
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    person, _, _ = await _invited(sessionmaker, unit, status="expired")
    stranger = await resident(sessionmaker, unit.id)
    for pnr in (person.personnummer, stranger.personnummer):  # expired; never invited
        response = await client.post(LOOKUP, json={"personnummer": pnr}, headers=portal)
        assert (response.status_code, response.json()["code"]) == (404, "no-invitation")
        assert response.headers["content-type"] == "application/problem+json"
    as_person = {**portal, **idp.headers(person.personnummer)}
    invalid = await client.post(LOOKUP, json={"personnummer": "19870601-1234"}, headers=as_person)
    assert invalid.status_code == 422
    extra = await client.post(LOOKUP, json={"personnummer": person.personnummer, "x": 1}, headers=portal)
    assert extra.status_code == 422


async def test_declining_closes_the_invitation_and_cancels_its_messages(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, portal: dict[str, str]
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    person, invitation_id, message_id = await _invited(sessionmaker, unit)
    body = {"personnummer": person.personnummer, "invitation_id": invitation_id}

    response = await client.post(DECLINE, json=body, headers=portal)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "declined"
    assert dict(await fetch(sessionmaker, "SELECT id, status FROM messages")) == {message_id: "cancelled"}
    events = await fetch(
        sessionmaker,
        "SELECT from_status, to_status, reason, actor FROM invitation_events "
        "WHERE invitation_id = :id ORDER BY id",
        id=invitation_id,
    )
    assert events[-1] == ("planned", "declined", "declined by the resident", "portal-1177")
    again = await client.post(DECLINE, json=body, headers=portal)
    assert (again.status_code, again.json()["status"]) == (200, "declined")
    assert len(await fetch(sessionmaker, "SELECT id FROM invitation_events")) == 2, "no second event"
    assert (
        await client.post(LOOKUP, json={"personnummer": person.personnummer}, headers=portal)
    ).status_code == 404


async def test_a_booked_invitation_cannot_be_declined(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, portal: dict[str, str]
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    person, invitation_id, _ = await _invited(
        sessionmaker, unit, sent_on=dt.date(2027, 3, 1), status="booked"
    )
    response = await client.post(
        DECLINE, json={"personnummer": person.personnummer, "invitation_id": invitation_id}, headers=portal
    )
    assert (response.status_code, response.json()["code"]) == (409, "invitation-closed")
    assert dict(await fetch(sessionmaker, "SELECT id, status FROM invitations")) == {invitation_id: "booked"}


async def test_a_portal_can_neither_see_nor_decline_another_residents_invitation(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, portal: dict[str, str]
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    me, mine, _ = await _invited(sessionmaker, unit)
    _, theirs, their_message = await _invited(sessionmaker, unit)
    response = await client.post(
        DECLINE, json={"personnummer": me.personnummer, "invitation_id": theirs}, headers=portal
    )
    assert (response.status_code, response.json()["code"]) == (404, "no-invitation")
    missing = await client.post(
        DECLINE, json={"personnummer": me.personnummer, "invitation_id": 10**9}, headers=portal
    )
    same = {"detail": missing.json()["detail"], "request_id": missing.json()["request_id"]}
    assert missing.json() == {**response.json(), **same}, "the same answer"
    status = dict(await fetch(sessionmaker, "SELECT id, status FROM invitations"))
    assert status == {mine: "planned", theirs: "planned"}
    assert dict(
        await fetch(sessionmaker, "SELECT id, status FROM messages WHERE id = :id", id=their_message)
    ) == {their_message: "planned"}


async def test_only_the_portal_role_may_call_it(
    sessionmaker: SM, make_unit: MakeUnit, client: httpx.AsyncClient, make_key: KeyMaker
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    person, invitation_id, _ = await _invited(sessionmaker, unit)
    body = {"personnummer": person.personnummer, "invitation_id": invitation_id}
    for role in ("operator", "ehr"):
        headers = await make_key(role, units=[unit.hsa_id] if role == "ehr" else None)
        for url in (LOOKUP, DECLINE):
            payload = body if url == DECLINE else {"personnummer": person.personnummer}
            response = await client.post(url, json=payload, headers=headers)
            assert (response.status_code, response.json()["code"]) == (403, "forbidden"), (role, url)
    assert (await client.post(LOOKUP, json={"personnummer": person.personnummer})).status_code == 401
    assert dict(await fetch(sessionmaker, "SELECT id, status FROM invitations")) == {invitation_id: "planned"}


def test_the_personnummer_is_never_in_the_url(app: FastAPI) -> None:
    """Every portal operation takes its resident from the signed token in a header, and a body may
    name them too: never the path or query."""
    document = app.openapi()
    portal_paths = [p for p in document["paths"] if p.startswith("/v1/portal/")]
    assert len(portal_paths) >= 7
    for path in portal_paths:
        operation = document["paths"][path]["post"]
        assert "personnummer" not in path
        assert {p["in"] for p in operation.get("parameters", [])} <= {"path", "header"}, path
        assert all(p["name"] != "personnummer" for p in operation.get("parameters", []))
        schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        schema = document["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
        assert "personnummer" in schema["properties"], path
        assert "personnummer" not in schema.get("required", []), path
        assert "X-Resident-Token" in {p["name"] for p in operation["parameters"]}, path
        assert operation["security"] == [{"HTTPBearer": ["portal"]}]
    for path in (LOOKUP, DECLINE):
        assert "X-Resident-Token" in document["paths"][path]["post"]["description"]
