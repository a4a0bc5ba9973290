"""What Swedish Excel writes imports as its UTF-8 comma version does; a file with only some
columns leaves the others alone; the file's own problems are one clear error that never quotes
a row (against real Postgres)."""

from __future__ import annotations

import codecs
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.imports import MAX_LINE_BYTES
from halsosamtal.residents.importer import COLUMNS
from halsosamtal.units.models import CareUnit
from tests.residents.conftest import ImportCsv
from tests.residents.support import make_personnummer
from tests.residents.test_import import D1, D2, periods, person, residents

ANNA = make_personnummer("19850709", 382)
BO = make_personnummer("19620101", 239)
STORED = ("unit", "municipality", "deso", "protected_identity", "address_line", "postal_code", "city")


def _rows(units: list[CareUnit]) -> list[dict[str, str]]:
    return [
        person(ANNA, units[0], address_line="Åsvägen 3; lgh 1101", city="Hälsingborg", phone=""),
        person(BO, units[1], address_line='Storgatan "Gamla" 1', digital_mailbox="ja", city="Göteborg"),
    ]


def _file(rows: list[dict[str, str]], *, delimiter: str = ",", crlf: bool = False) -> str:
    """A register file written as Excel writes CSV: a field quoted only when it must be."""
    end = "\r\n" if crlf else "\n"

    def field(value: str) -> str:
        if delimiter in value or '"' in value:
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [delimiter.join(COLUMNS)] + [delimiter.join(field(r.get(c, "")) for c in COLUMNS) for r in rows]
    return end.join(lines) + end


def _state(stored: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {p: tuple(getattr(r, c) for c in (*STORED, "phone", "digital_mailbox")) for p, r in stored.items()}


@pytest.mark.parametrize(
    ("delimiter", "encoding", "bom", "crlf"),
    [
        (";", "cp1252", False, True),  # Excel's "CSV (semikolonavgränsad)"
        (";", "utf-8", True, True),  # Excel's "CSV UTF-8"
        (",", "utf-8", True, False),
        (",", "cp1252", False, False),
        (";", "utf-8", False, False),
    ],
)
async def test_an_excel_file_gives_the_same_register_as_its_utf8_comma_version(
    import_csv: ImportCsv,
    units: list[CareUnit],
    sessionmaker: async_sessionmaker[AsyncSession],
    delimiter: str,
    encoding: str,
    bom: bool,
    crlf: bool,
) -> None:
    rows = _rows(units)
    plain = await import_csv(_file(rows), as_of=D1)
    expected = _state(await residents(sessionmaker))
    assert plain.format.model_dump() == {
        "delimiter": ",",
        "encoding": "utf-8",
        "bom": False,
        "line_ending": "LF",
        "delimiter_detected": True,
        "encoding_detected": True,
    }

    data = _file(rows, delimiter=delimiter, crlf=crlf).encode(encoding)
    if bom:
        data = codecs.BOM_UTF8 + data
    for chunk in (None, 3):
        again = await import_csv(data, as_of=D2, chunk=chunk)
        assert (again.rows, again.unchanged, again.rejected) == (2, 2, 0), again.rejects
        assert _state(await residents(sessionmaker)) == expected
        assert (again.format.delimiter, again.format.bom) == (delimiter, bom)
        assert again.format.encoding == ("utf-8" if encoding == "utf-8" else "windows-1252")
        assert again.format.line_ending == ("CRLF" if crlf else "LF")


async def test_a_given_delimiter_and_encoding_override_what_would_be_detected(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # One column, whose value holds a ';': detection says ',' (no delimiter in the header).
    content = f"personnummer;city\n{ANNA};Malmö\n".encode("cp1252")
    summary = await import_csv(content, as_of=D1, delimiter=";", encoding="windows-1252")
    assert summary.format.model_dump() == {
        "delimiter": ";",
        "encoding": "windows-1252",
        "bom": False,
        "line_ending": "LF",
        "delimiter_detected": False,
        "encoding_detected": False,
    }
    assert (await residents(sessionmaker))[ANNA].city == "Malmö"


async def test_a_file_with_only_some_columns_leaves_the_others_unchanged(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(_file(_rows(units)), as_of=D1)
    before = await residents(sessionmaker)
    history = await periods(sessionmaker)

    # Only the phone changes for Anna; Bo is mentioned and keeps everything.
    summary = await import_csv(f"personnummer,phone\n{ANNA},0709999999\n{BO},0701234567\n", as_of=D2)

    assert (summary.rows, summary.updated, summary.unchanged, summary.rejected) == (2, 1, 1, 0)
    assert summary.columns == ["personnummer", "phone"]
    assert summary.columns_left_unchanged == [c for c in COLUMNS if c not in ("personnummer", "phone")]
    after = await residents(sessionmaker)
    assert after[ANNA].phone == "0709999999"
    for column in (*STORED, "digital_mailbox", "language"):
        assert getattr(after[ANNA], column) == getattr(before[ANNA], column), column
    assert after[BO].version == before[BO].version  # not even rewritten
    assert await periods(sessionmaker) == history  # listings not closed


async def test_protected_identity_alone_still_clears_the_address_and_keeps_the_rest(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(_file(_rows(units)), as_of=D1)

    await import_csv(f"personnummer,protected_identity\n{ANNA},ja\n", as_of=D2)
    anna = (await residents(sessionmaker))[ANNA]
    assert (anna.protected_identity, anna.address_line, anna.postal_code, anna.city) == (
        True,
        None,
        None,
        None,
    )
    assert (anna.unit, anna.municipality, anna.deso) == (units[0].hsa_id, "1380", "1380C1010")

    # An address without the protected_identity column: the stored protection still holds.
    await import_csv(f"personnummer,address_line\n{ANNA},Hemliga vägen 1\n", as_of=D2)
    assert (await residents(sessionmaker))[ANNA].address_line is None


async def test_a_new_resident_in_a_partial_file_gets_the_defaults(
    import_csv: ImportCsv, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    summary = await import_csv(f"personnummer,phone\n{ANNA},0701\n", as_of=D1)
    assert summary.inserted == 1
    anna = (await residents(sessionmaker))[ANNA]
    assert (anna.unit, anna.municipality, anna.protected_identity, anna.digital_mailbox, anna.language) == (
        None,
        None,
        False,
        False,
        "sv",
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{ANNA},SE2321000131-E000000000001,1380,,false,Storgatan 1\n", "the file has no header row"),
        (f"{ANNA};Storgatan 1;302 20\r\n", "the file has no header row"),
        ("personnummer,city\n" + "x" * (MAX_LINE_BYTES + 10), "line 2 is longer than"),
        (
            "personnummer,city\n" + f"{ANNA},ok\n" + "y" * (MAX_LINE_BYTES + 10) + "\n",
            "line 3 is longer than",
        ),
        ("p" * (MAX_LINE_BYTES + 10), "the header row (line 1) does not end within"),
        ("personnummer,ci\x00ty\n", "the header row (line 1) contains a NUL byte"),
        ("\r\n\r\n", "the file is empty"),
    ],
)
async def test_the_files_own_problems_are_one_error_that_quotes_no_row(
    import_csv: ImportCsv, sessionmaker: async_sessionmaker[AsyncSession], content: str, message: str
) -> None:
    with pytest.raises(InvalidInput) as raised:
        await import_csv(content, as_of=D1, chunk=1 << 16)
    assert message in raised.value.detail
    assert ANNA not in raised.value.detail
    assert "Storgatan" not in raised.value.detail
    assert await residents(sessionmaker) == {}


async def test_a_nul_byte_in_a_row_rejects_that_row_and_excel_blank_lines_are_not_rows(
    import_csv: ImportCsv, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    content = f"personnummer;city\r\n{ANNA};Ha\x00lmstad\r\n;\r\n{BO};Borås\r\n;;\r\n".encode("cp1252")
    summary = await import_csv(content, as_of=D1)
    assert [(r.line, r.reason) for r in summary.rejects] == [(2, "contains a NUL byte")]
    assert (summary.rows, summary.inserted) == (2, 1)
    assert (await residents(sessionmaker))[BO].city == "Borås"


async def test_booleans_are_ja_nej_one_zero_true_false_in_any_case_and_nothing_else(
    import_csv: ImportCsv, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    words = {"JA": True, "Nej": False, "1": True, "0": False, "TRUE": True, "false": False, " ja ": True}
    bad = ["yes", "no", "x", "2", "sant ja"]
    numbers = [make_personnummer("19700101", n) for n in range(1, len(words) + len(bad) + 1)]
    lines = [f"{p};{w}" for p, w in zip(numbers, [*words, *bad], strict=True)]
    summary = await import_csv("personnummer;digital_mailbox\n" + "\n".join(lines) + "\n", as_of=D1)
    stored = await residents(sessionmaker)
    for pnr, expected in zip(numbers, words.values(), strict=False):
        assert stored[pnr].digital_mailbox is expected
    assert [(r.line, r.column, r.reason) for r in summary.rejects] == [
        (line, "digital_mailbox", "must be true or false (also ja/nej, 1/0)")
        for line in range(len(words) + 2, len(words) + len(bad) + 2)
    ]


async def test_api_reads_an_excel_body_and_takes_delimiter_and_encoding_as_parameters(
    api: httpx.AsyncClient, operator: dict[str, str], units: list[CareUnit]
) -> None:
    body = _file(_rows(units), delimiter=";", crlf=True).encode("cp1252")
    response = await api.post(
        "/v1/residents/import", content=body, headers={**operator, "Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["format"]["encoding"] == "windows-1252"
    assert response.json()["format"]["delimiter"] == ";"

    bad = await api.post(
        "/v1/residents/import",
        params={"encoding": "ebcdic"},
        content=body,
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"

    headless = await api.post(
        "/v1/residents/import",
        content=f"{ANNA};Storgatan 1\r\n".encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert headless.status_code == 422
    assert "no header row" in headless.json()["detail"]
    assert ANNA not in headless.text
