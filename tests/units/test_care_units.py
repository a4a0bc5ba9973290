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


# --- partial files, Swedish Excel, bounds -----------------------------------------------------

FULL = "hsa_id,name,municipality,operator,participating,weekly_capacity,visiting_address,phone\n"


async def _units(sm: async_sessionmaker[AsyncSession]) -> dict[str, tuple[Any, ...]]:
    async with sm() as s:
        return {
            u.hsa_id: (
                u.name,
                u.municipality,
                u.operator,
                u.participating,
                u.weekly_capacity,
                u.visiting_address,
                u.phone,
            )
            for u in (await s.scalars(select(CareUnit))).all()
        }


async def test_a_file_with_only_some_columns_leaves_the_others_unchanged(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _import(
        sessionmaker, FULL + f"{A},Andersberg,1380,public,true,20,Andersbergsvägen 1,035-10 20 30\n"
    )

    result = await _import(sessionmaker, f"hsa_id,weekly_capacity\n{A},25\n")

    assert (result.updated, result.rejected) == (1, 0)
    assert result.columns == ["hsa_id", "weekly_capacity"]
    assert result.columns_left_unchanged == [
        "name", "municipality", "operator", "participating", "visiting_address", "phone",
    ]  # fmt: skip
    assert (await _units(sessionmaker))[A] == (
        "Andersberg", "1380", "public", True, 25, "Andersbergsvägen 1", "035-10 20 30",
    )  # fmt: skip


async def test_a_new_unit_needs_name_municipality_and_operator(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    await _import(sessionmaker, HEADER + f"{A},Andersberg,1380,public,true,20\n")
    result = await _import(sessionmaker, f"hsa_id,phone\n{A},035-1\n{B},035-2\n")
    assert result.updated == 1
    assert [(r.line, r.column, r.reason) for r in result.rejects] == [
        (3, "name", "a new care unit needs name, municipality, operator; the file has no such columns")
    ]
    assert set(await _units(sessionmaker)) == {A}


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom", "newline"),
    [("cp1252", ";", False, "\r\n"), ("utf-8", ";", True, "\r\n"), ("utf-8", ",", True, "\n")],
)
async def test_an_excel_file_gives_the_same_units_as_its_utf8_comma_version(
    sessionmaker: async_sessionmaker[AsyncSession], encoding: str, delimiter: str, bom: bool, newline: str
) -> None:
    rows = [
        [A, "Vårdcentralen Åby", "1380", "public", "JA", "20", "Åbyvägen 2, Halmstad", "035-10 20 30"],
        [B, "Capio Söder", "1380", "private", "nej", "", "", ""],
    ]

    def csv_text(d: str, nl: str) -> str:
        quote = [(f'"{f}"' if d in f else f) for r in rows for f in r]
        lines = [d.join(FULL.strip().split(","))]
        lines += [d.join(quote[i : i + 8]) for i in range(0, len(quote), 8)]
        return nl.join(lines) + nl

    await _import(sessionmaker, csv_text(",", "\n"))
    expected = await _units(sessionmaker)
    data = csv_text(delimiter, newline).encode(encoding)
    result = await _import(sessionmaker, (b"\xef\xbb\xbf" if bom else b"") + data, chunk=4)
    assert (result.rows, result.unchanged, result.rejected) == (2, 2, 0), result.rejects
    assert (result.format.delimiter, result.format.bom) == (delimiter, bom)
    assert result.format.encoding == ("windows-1252" if encoding == "cp1252" else "utf-8")
    assert await _units(sessionmaker) == expected
    assert expected[B][3:] == (False, 0, None, None)


async def test_a_nul_byte_rejects_its_row_and_an_endless_line_refuses_the_file(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    result = await _import(
        sessionmaker, HEADER + f"{A},Ande\x00rsberg,1380,public,true,20\n{B},B,1380,public,1,2\n"
    )
    assert [(r.line, r.reason) for r in result.rejects] == [(2, "contains a NUL byte")]
    assert result.inserted == 1
    with pytest.raises(InvalidInput, match="line 2 is longer than 1048576 bytes"):
        await _import(sessionmaker, HEADER + "x" * (2 << 20), chunk=1 << 16)


async def test_rejects_are_streamed_to_the_sink_and_capped_in_the_summary(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    lines = "".join(f"SE2321000131-E{n:012d},Unit {n},1380,public,kanske,1\n" for n in range(2500))
    seen: list[Any] = []
    result = await _import(
        sessionmaker, HEADER + lines, chunk=1 << 12, reject_limit=10, on_reject=seen.append
    )
    assert (result.rows, result.rejected, len(result.rejects), result.rejects_truncated) == (
        2500,
        2500,
        10,
        2490,
    )
    assert [r.line for r in seen] == list(range(2, 2502))
    assert result.rejects[0].reason == "participating must be true or false (also ja/nej, 1/0)"


async def test_a_duplicate_in_a_later_batch_is_still_a_duplicate(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    lines = "".join(f"SE2321000131-E{n:012d},Unit {n},1380,public,true,1\n" for n in range(1500))
    result = await _import(
        sessionmaker, HEADER + lines + f"SE2321000131-E{0:012d},Again,1380,public,true,1\n", chunk=1 << 14
    )
    assert (result.inserted, result.rejected) == (1500, 1)
    assert result.rejects[0].reason == "duplicate of line 2"


async def test_api_streams_an_excel_body_and_shows_address_and_phone(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    body = (
        FULL.strip().replace(",", ";")
        + "\r\n"
        + f"{A};Vårdcentralen Åby;1380;public;ja;20;Åbyvägen 2;035-10 20 30\r\n"
    ).encode("cp1252")
    response = await api.post(
        "/v1/care-units/import", content=body, headers={**operator, "Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["format"] | {} == {
        "delimiter": ";", "encoding": "windows-1252", "bom": False, "line_ending": "CRLF",
        "delimiter_detected": True, "encoding_detected": True,
    }  # fmt: skip
    unit = (await api.get(f"/v1/care-units/{A}", headers=operator)).json()
    assert (unit["name"], unit["visiting_address"], unit["phone"]) == (
        "Vårdcentralen Åby",
        "Åbyvägen 2",
        "035-10 20 30",
    )

    endless = await api.post(
        "/v1/care-units/import",
        content=b"hsa_id,name\n" + b"x" * (3 << 20),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert endless.status_code == 422
    assert "line 2 is longer than" in endless.json()["detail"]
    given = await api.post(
        "/v1/care-units/import",
        params={"encoding": "utf-8"},
        content=body,
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert given.status_code == 422  # read as UTF-8 it is not text
    assert "cannot be read as utf-8: line 2" in given.json()["detail"]
