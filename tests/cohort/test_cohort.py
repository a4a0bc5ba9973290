from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.units.models import CareUnit
from tests.factories import make_resident

RULES = {"target_ages": [40, 50], "talk_rate": "1000", "valid_until": "2028-03-31"}


async def _region(
    sm: async_sessionmaker[AsyncSession], make_unit: Callable[..., Awaitable[CareUnit]]
) -> tuple[CareUnit, CareUnit]:
    part, nonpart = await make_unit(participating=True), await make_unit(participating=False)
    # Turning 40 in 2027: born 1987 (first and last day count).
    await make_resident(sm, dt.date(1987, 1, 1), sex="F", care_unit_id=part.id)
    await make_resident(sm, dt.date(1987, 12, 31), sex="M", care_unit_id=part.id)
    await make_resident(sm, dt.date(1987, 6, 1), sex="M", care_unit_id=nonpart.id)
    await make_resident(sm, dt.date(1987, 6, 2), sex="F", care_unit_id=None)
    # Turning 50: born 1977.
    await make_resident(sm, dt.date(1977, 3, 3), sex="F", care_unit_id=part.id)
    # Not in the cohort: wrong birth years, dead, emigrated, moved out before as_of.
    await make_resident(sm, dt.date(1986, 12, 31), care_unit_id=part.id)
    await make_resident(sm, dt.date(1988, 1, 1), care_unit_id=part.id)
    await make_resident(sm, dt.date(1987, 2, 2), care_unit_id=part.id, deceased_on=dt.date(2026, 1, 5))
    await make_resident(sm, dt.date(1987, 2, 3), care_unit_id=part.id, emigrated_on=dt.date(2026, 2, 1))
    await make_resident(sm, dt.date(1987, 2, 4), care_unit_id=part.id, moved_out_on=dt.date(2026, 3, 1))
    # Dies after as_of: still counted on as_of.
    await make_resident(
        sm, dt.date(1977, 4, 4), sex="M", care_unit_id=part.id, deceased_on=dt.date(2027, 5, 1)
    )
    return part, nonpart


async def test_counts_by_age_unit_and_sex(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
) -> None:
    part, nonpart = await _region(sessionmaker, make_unit)
    await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    response = await api.get("/v1/cohort/2027/counts", headers=operator, params={"as_of": "2026-12-01"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["total"], body["eligible"], body["not_listed"], body["at_non_participating_unit"]) == (
        6,
        4,
        1,
        1,
    )
    assert [(c["age"], c["care_unit"], c["sex"], c["residents"]) for c in body["counts"]] == sorted(
        [
            (40, part.hsa_id, "female", 1),
            (40, part.hsa_id, "male", 1),
            (40, nonpart.hsa_id, "male", 1),
            (40, None, "female", 1),
            (50, part.hsa_id, "female", 1),
            (50, part.hsa_id, "male", 1),
        ],
        key=lambda r: (r[0], r[1] is None, r[1] or "", r[2]),
    )
    later = await api.get("/v1/cohort/2027/counts", headers=operator, params={"as_of": "2027-06-01"})
    assert later.json()["total"] == 5


async def test_members_filter_and_page_through_without_gaps_or_repeats(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
) -> None:
    part, _ = await _region(sessionmaker, make_unit)
    await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"care_unit": part.hsa_id, "limit": 1, "as_of": "2026-12-01"}
        if cursor:
            params["cursor"] = cursor
        page = (await api.get("/v1/cohort/2027/members", headers=operator, params=params)).json()
        seen += [m["personnummer"] for m in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert len(seen) == len(set(seen)) == 4
    assert all(len(p) == 13 and p[8] == "-" for p in seen)
    only_50 = await api.get(
        "/v1/cohort/2027/members", headers=operator, params={"age": 50, "as_of": "2026-12-01"}
    )
    assert [m["birth_date"] for m in only_50.json()["items"]] == ["1977-03-03", "1977-04-04"]
    assert "address_line" not in only_50.json()["items"][0]


async def test_bad_queries_are_clear(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    assert (await api.get("/v1/cohort/2027/counts", headers=operator)).json()["code"] == "not-found"
    await api.put("/v1/programme-years/2027", headers=operator, json=RULES)
    wrong_age = await api.get("/v1/cohort/2027/members", headers=operator, params={"age": 45})
    assert wrong_age.status_code == 422
    assert wrong_age.json()["detail"] == "45 is not a target age of 2027 (40, 50)"
    bad_cursor = await api.get("/v1/cohort/2027/members", headers=operator, params={"cursor": "nonsense"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["pointer"] == "/cursor"
