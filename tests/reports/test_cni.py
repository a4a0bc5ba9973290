"""Importing the Care Need Index per DeSO area."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.errors import InvalidInput
from halsosamtal.reports.cni import import_cni
from halsosamtal.reports.models import DesoCni
from halsosamtal.reports.schemas import CniImportSummary

SM = async_sessionmaker[AsyncSession]


async def _import(sm: SM, content: str | bytes, **kwargs: Any) -> CniImportSummary:
    data = content.encode() if isinstance(content, str) else content

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), 7):  # small chunks: where they are cut does not matter
            yield data[i : i + 7]

    async with sm() as s, s.begin():
        return await import_cni(s, chunks(), **kwargs)


async def _table(sm: SM) -> dict[str, Decimal]:
    async with sm() as s:
        return {r.deso: r.cni for r in await s.scalars(select(DesoCni))}


async def test_valid_rows_are_imported_and_bad_rows_reported_by_line(sessionmaker: SM) -> None:
    summary = await _import(
        sessionmaker,
        "DeSO,CNI\n"
        "1380C1010,1.25\n"
        '1380c1020,"0,75"\n'  # lower case and a Swedish decimal comma are fine
        "1380X1030,1.0\n"
        "1380C1040,high\n"
        "1380C1010,2.0\n"
        "\n"
        "1381A0001,-0.3\n"
        "1381A0002\n",
    )
    assert (summary.rows, summary.inserted, summary.rejected) == (7, 3, 4)
    assert [(r.line, r.column, r.reason) for r in summary.rejects] == [
        (4, "deso", "not a DeSO code like 1380C1010"),
        (5, "cni", "cni must be a number, e.g. 1.25"),
        (6, "deso", "duplicate of line 2"),
        (9, None, "has 1 fields; the header has 2 columns"),
    ]
    assert await _table(sessionmaker) == {
        "1380C1010": Decimal("1.2500"),
        "1380C1020": Decimal("0.7500"),
        "1381A0001": Decimal("-0.3000"),
    }


async def test_the_file_is_the_whole_table_unless_rows_were_rejected(sessionmaker: SM) -> None:
    await _import(sessionmaker, "deso,cni\n1380C1010,1\n1380C1020,2\n1380C1030,3\n")
    again = await _import(sessionmaker, "deso,cni\n1380C1010,1\n1380C1020,2\n1380C1030,3\n")
    assert (again.inserted, again.updated, again.unchanged, again.removed) == (0, 0, 3, 0), "nothing changes"

    partial = await _import(sessionmaker, "deso,cni\n1380C1010,1.5\nbad,1\n")
    assert (partial.updated, partial.removed, partial.rejected) == (1, 0, 1)
    assert partial.warnings == [
        "2 area(s) not in the file were kept, because some rows were rejected; "
        "import a corrected file to remove them"
    ]
    assert len(await _table(sessionmaker)) == 3

    whole = await _import(sessionmaker, "cni,deso\n1.5,1380C1010\n")
    assert (whole.unchanged, whole.removed) == (1, 2)
    assert await _table(sessionmaker) == {"1380C1010": Decimal("1.5000")}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the file is empty"),
        ("deso,value\n1380C1010,1\n", "unknown column(s) 'value'"),
        ("deso\n1380C1010\n", "the header has no cni column"),
        ("1380C1010,1.2\n", "the file has no header row"),
    ],
)
async def test_a_file_without_the_right_header_is_refused_whole(
    sessionmaker: SM, content: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await _import(sessionmaker, content)
    assert message in raised.value.detail
    assert await _table(sessionmaker) == {}


async def test_a_swedish_excel_file_reads_as_its_utf8_comma_version(sessionmaker: SM) -> None:
    plain = await _import(sessionmaker, "deso,cni\n1380C1010,1.25\n1380C1020,0.75\n")
    excel = await _import(sessionmaker, b"\xef\xbb\xbfDeSO;CNI\r\n1380C1010;1,25\r\n1380C1020;0,75\r\n;\r\n")
    assert (excel.rows, excel.unchanged, excel.rejected) == (2, 2, 0)
    assert (excel.format.delimiter, excel.format.encoding, excel.format.bom) == (";", "utf-8", True)
    assert excel.format.line_ending == "CRLF"
    assert plain.format.delimiter == ","
    assert await _table(sessionmaker) == {"1380C1010": Decimal("1.2500"), "1380C1020": Decimal("0.7500")}
