from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.errors import InvalidInput
from halsosamtal.units import service
from halsosamtal.units.models import CareUnit
from tests.conftest import KeyMaker

HEADER = "hsa_id,name,municipality,operator,participating,weekly_capacity\n"
A = "SE2321000131-E000000000001"
B = "SE2321000131-E000000000002"


async def _import(
    sm: async_sessionmaker[AsyncSession], text: str | bytes, *, chunk: int = 5, **kw: Any
) -> Any:
    data = text.encode() if isinstance(text, str) else text

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), chunk):
            yield data[i : i + chunk]

    async with sm() as s, s.begin():
        return await service.import_care_units(s, chunks(), source="t.csv", actor="test", **kw)


async def test_import_inserts_then_reimport_changes_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    text = (
        HEADER
        + f"{A},Vårdcentralen Andersberg,1380,public,true,20\n{B},Capio Halmstad,1380,private,false,15\n"
    )
    first = await _import(sessionmaker, text)
    assert (first.inserted, first.updated, first.unchanged, first.rejected) == (2, 0, 0, 0)
    async with sessionmaker() as s:
        before = {u.hsa_id: u.updated_at for u in (await s.scalars(select(CareUnit))).all()}
    second = await _import(sessionmaker, text)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    async with sessionmaker() as s:
        after = {u.hsa_id: u.updated_at for u in (await s.scalars(select(CareUnit))).all()}
    assert before == after


async def test_import_updates_changed_rows_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _import(sessionmaker, HEADER + f"{A},X,1380,public,true,20\n{B},Y,1380,public,true,20\n")
    result = await _import(sessionmaker, HEADER + f"{A},X,1380,public,true,25\n{B},Y,1380,public,true,20\n")
    assert (result.inserted, result.updated, result.unchanged) == (0, 1, 1)


async def test_each_bad_row_is_rejected_with_its_line_and_the_rest_imported(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    text = (
        HEADER
        + f"{A},Good,1380,public,true,20\n"  # line 2
        + "SE123-E1,Bad hsa,1380,public,true,20\n"  # 3
        + f"{B},Bad municipality,138,public,true,20\n"  # 4
        + "SE2321000131-E000000000003,Bad operator,1380,county,true,20\n"  # 5
        + "SE2321000131-E000000000004,Bad flag,1380,public,kanske,20\n"  # 6
        + "SE2321000131-E000000000005,Bad capacity,1380,public,true,-1\n"  # 7
        + f"{A},Duplicate,1380,public,true,20\n"  # 8
        + "SE2321000131-E000000000006,Too few,1380\n"  # 9
        + '"SE2321000131-E000000000007","Two\nlines",1380,public,true,5\n'  # 10-11
        + "SE2321000131-E000000000008,,1380,public,true,5\n"  # 12
    )
    result = await _import(sessionmaker, text)
    assert result.rows == 10
    assert result.inserted == 2
    got = [(r.line, r.column) for r in result.rejects]
    assert got == [
        (3, "hsa_id"),
        (4, "municipality"),
        (5, "operator"),
        (6, "participating"),
        (7, "weekly_capacity"),
        (8, "hsa_id"),
        (9, None),
        (12, "name"),
    ]
    assert "duplicate of line 2" in result.rejects[5].reason
    assert result.rejects[6].reason == "has 3 fields; the header has 6 columns"


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("name,municipality,operator,participating,weekly_capacity\n", "the header has no hsa_id column"),
        (HEADER.strip() + ",colour\n", "unknown column(s) 'colour'"),
    ],
)
async def test_bad_header_refuses_the_whole_file(
    sessionmaker: async_sessionmaker[AsyncSession], header: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await _import(sessionmaker, header + f"{A},X,1380,public,true,20\n")
    assert message in raised.value.detail
    async with sessionmaker() as s:
        assert (await s.scalars(select(CareUnit))).all() == []


async def test_empty_file_is_refused(sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    with pytest.raises(InvalidInput, match="the file is empty"):
        await _import(sessionmaker, "")


async def test_api_import_list_get_and_update(api: httpx.AsyncClient, operator: dict[str, str]) -> None:
    body = HEADER + f"{A},Vårdcentralen Andersberg,1380,public,true,20\n{B},Capio,1382,private,false,10\n"
    response = await api.post(
        "/v1/care-units/import",
        content=body.encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["inserted"] == 2

    listed = await api.get("/v1/care-units", headers=operator, params={"participating": "true"})
    assert [u["hsa_id"] for u in listed.json()] == [A]

    patched = await api.patch(
        f"/v1/care-units/{B}", headers=operator, json={"participating": True, "weekly_capacity": 30}
    )
    assert patched.status_code == 200
    assert (patched.json()["participating"], patched.json()["weekly_capacity"]) == (True, 30)
    assert (await api.get(f"/v1/care-units/{B}", headers=operator)).json()["weekly_capacity"] == 30


async def test_update_rejects_unknown_fields_and_bad_values(
    api: httpx.AsyncClient, operator: dict[str, str], make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    unit = await make_unit()
    extra = await api.patch(f"/v1/care-units/{unit.hsa_id}", headers=operator, json={"name": "New"})
    assert extra.status_code == 422
    assert extra.headers["content-type"] == "application/problem+json"
    assert extra.json()["errors"][0]["pointer"] == "/name"
    assert extra.json()["errors"][0]["type"] == "extra_forbidden"
    negative = await api.patch(
        f"/v1/care-units/{unit.hsa_id}", headers=operator, json={"weekly_capacity": -3}
    )
    assert negative.status_code == 422
    assert negative.json()["errors"][0] | {"message": ""} == {
        "location": "body",
        "pointer": "/weekly_capacity",
        "type": "greater_than_equal",
        "message": "",
    }
    empty = await api.patch(f"/v1/care-units/{unit.hsa_id}", headers=operator, json={})
    assert empty.status_code == 422
    missing = await api.patch(
        "/v1/care-units/SE2321000131-E999999999999", headers=operator, json={"participating": False}
    )
    assert missing.status_code == 404


async def test_ehr_client_sees_only_its_own_units(
    api: httpx.AsyncClient, make_key: KeyMaker, make_unit: Callable[..., Awaitable[CareUnit]]
) -> None:
    mine, other = await make_unit(), await make_unit()
    ehr = await make_key("ehr", units=[mine.hsa_id])
    listed = await api.get("/v1/care-units", headers=ehr)
    assert [u["hsa_id"] for u in listed.json()] == [mine.hsa_id]
    assert (await api.get(f"/v1/care-units/{mine.hsa_id}", headers=ehr)).status_code == 200
    forbidden = await api.get(f"/v1/care-units/{other.hsa_id}", headers=ehr)
    assert forbidden.status_code == 403
    assert forbidden.json()["code"] == "forbidden"
    assert (
        await api.patch(f"/v1/care-units/{mine.hsa_id}", headers=ehr, json={"weekly_capacity": 1})
    ).status_code == 403
