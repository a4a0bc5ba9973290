from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.units.models import CareUnit
from tests.factories import make_resident


async def test_lookup_by_personnummer_in_any_form_with_listing_history(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
) -> None:
    unit = await make_unit()
    resident = await make_resident(
        sessionmaker,
        dt.date(1987, 5, 4),
        sex="M",
        care_unit_id=unit.id,
        address_line="Storgatan 1",
        postal_code="302 45",
        city="Halmstad",
    )
    async with sessionmaker() as s, s.begin():
        await s.execute(
            text(
                "INSERT INTO listing_periods (resident_id, care_unit_id, listed_from)"
                " VALUES (:r, :u, '2025-01-01')"
            ),
            {"r": resident.id, "u": unit.id},
        )
    short = resident.personnummer[2:8] + "-" + resident.personnummer[8:]
    for form in (resident.personnummer, short):
        response = await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": form})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["personnummer"] == resident.personnummer[:8] + "-" + resident.personnummer[8:]
        assert (body["sex"], body["care_unit"]) == ("male", unit.hsa_id)
        assert body["address"] == {"address_line": "Storgatan 1", "postal_code": "302 45", "city": "Halmstad"}
        assert body["listings"] == [
            {"care_unit": unit.hsa_id, "listed_from": "2025-01-01", "listed_to": None}
        ]


async def test_protected_identity_never_shows_an_address(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    resident = await make_resident(
        sessionmaker,
        dt.date(1977, 2, 3),
        protected_identity=True,
        address_line="Hemlig väg 2",
        city="X",
        municipality="1315",
        deso="1315C1020",
        phone="0701234567",
    )
    response = await api.post(
        "/v1/residents/lookup", headers=operator, json={"personnummer": resident.personnummer}
    )
    body = response.json()
    assert body["protected_identity"] is True
    # Nothing that locates the resident: no address, neighbourhood-sized area, municipality or phone.
    assert (body["address"], body["deso"], body["municipality"], body["phone"]) == (None, None, None, None)
    for secret in ("Hemlig", "1315", "0701234567"):
        assert secret not in response.text
    from tests.messaging.factories import make_year

    await make_year(sessionmaker, 2017)
    members = await api.get("/v1/cohort/2017/members", headers=operator, params={"age": 40})
    assert members.status_code == 200, members.text
    (member,) = [m for m in members.json()["items"] if m["protected_identity"]]
    assert (member["deso"], member["municipality"]) == (None, None)


async def test_lookup_errors_are_clear(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    bad = await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": "19880320-0018"})
    assert bad.status_code == 422
    assert bad.json()["detail"] == "personnummer: the check digit is wrong"
    missing = await api.post("/v1/residents/lookup", headers=operator, json={"personnummer": "19880320-0016"})
    assert missing.status_code == 404
    assert "19880320" not in missing.text
