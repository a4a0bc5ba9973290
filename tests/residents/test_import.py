"""Importing residents from the population and listing register (against real Postgres)."""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.core.clock import local_today
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.imports import ImportSummary, Reject, parse_bool
from halsosamtal.residents.importer import COLUMNS, MAX_RECORD_LINES, import_residents
from halsosamtal.units.models import CareUnit
from tests.conftest import KeyMaker
from tests.residents.conftest import ImportCsv
from tests.residents.support import make_personnummer, register_csv

D1, D2, D3 = dt.date(2025, 1, 15), dt.date(2025, 4, 1), dt.date(2025, 9, 1)

ANNA = make_personnummer("19850709", 382)  # female (8 is even)
BO = make_personnummer("19620101", 239)  # male
CARL = make_personnummer("19990315", 455)
DORA = make_personnummer("20010520", 880)
EVA = make_personnummer("19751224", 662)


def person(pnr: str, unit: CareUnit | None, **fields: str) -> dict[str, str]:
    row = {
        "personnummer": pnr,
        "care_unit": unit.hsa_id if unit else "",
        "municipality": "1380",
        "deso": "1380C1010",
        "protected_identity": "false",
        "address_line": "Storgatan 1",
        "postal_code": "302 20",
        "city": "Halmstad",
        "phone": "0701234567",
        "digital_mailbox": "true",
        "language": "sv",
    }
    row.update(fields)
    return row


async def fetch(sessionmaker: async_sessionmaker[AsyncSession], sql: str, **params: Any) -> list[Any]:
    async with sessionmaker() as s:
        return list((await s.execute(text(sql), params)).all())


async def residents(sessionmaker: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    rows = await fetch(
        sessionmaker,
        """
        SELECT r.*, r.xmin::text || '/' || r.xmax::text AS version, u.hsa_id AS unit
        FROM residents r LEFT JOIN care_units u ON u.id = r.care_unit_id""",
    )
    return {r.personnummer: r for r in rows}


async def periods(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[Any, ...]]:
    """(personnummer, HSA-id, listed_from, listed_to, row version) of every listing period."""
    rows = await fetch(
        sessionmaker,
        """
        SELECT r.personnummer, u.hsa_id, p.listed_from, p.listed_to, p.xmin::text
        FROM listing_periods p JOIN residents r ON r.id = p.resident_id
        JOIN care_units u ON u.id = p.care_unit_id
        ORDER BY r.personnummer, p.listed_from, p.id""",
    )
    return [tuple(r) for r in rows]


def counts(summary: ImportSummary) -> tuple[int, ...]:
    return (
        summary.rows,
        summary.inserted,
        summary.updated,
        summary.unchanged,
        summary.rejected,
        summary.moved_out,
    )


# --- inserting, updating, leaving alone -----------------------------------------------------


async def test_first_import_takes_birth_date_sex_and_coordination_from_the_personnummer(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    coordination = make_personnummer("19900412", 123, coordination=True, sep="-")
    hundred = make_personnummer("19241003", 14, short=True, sep="+")
    rows = [
        person(ANNA, units[0], language="", digital_mailbox="ja"),
        person(BO[2:8] + "-" + BO[8:], units[1], digital_mailbox="NEJ"),
        person(coordination, None, protected_identity=""),
        person(hundred, units[0], deceased_on="2024-12-24", language="fi"),
    ]
    summary = await import_csv(register_csv(rows), as_of=D1)

    assert counts(summary) == (4, 4, 0, 0, 0, 0)
    assert summary.rejects == []
    assert summary.warnings == []
    stored = await residents(sessionmaker)
    coordinated_pnr, old_pnr = coordination.replace("-", ""), "19" + hundred.replace("+", "")
    assert set(stored) == {ANNA, BO, coordinated_pnr, old_pnr}
    anna, bo = stored[ANNA], stored[BO]
    assert (anna.birth_date, anna.sex, anna.coordination_number) == (dt.date(1985, 7, 9), "F", False)
    assert (bo.birth_date, bo.sex) == (dt.date(1962, 1, 1), "M")
    assert (anna.language, anna.digital_mailbox, bo.digital_mailbox) == ("sv", True, False)
    assert (anna.unit, anna.municipality, anna.deso) == (units[0].hsa_id, "1380", "1380C1010")
    coordinated = stored[coordinated_pnr]
    assert coordinated.coordination_number
    assert coordinated.birth_date == dt.date(1990, 4, 12)
    assert coordinated.unit is None
    assert coordinated.protected_identity is False
    old = stored[old_pnr]
    assert (old.birth_date, old.deceased_on, old.language) == (
        dt.date(1924, 10, 3),
        dt.date(2024, 12, 24),
        "fi",
    )

    [record] = await fetch(sessionmaker, "SELECT * FROM register_imports")
    assert record.id == summary.import_id
    assert (record.kind, record.as_of, record.snapshot, record.source, record.actor) == (
        "residents",
        D1,
        False,
        "test",
        "test",
    )
    assert (
        record.rows_total,
        record.inserted,
        record.updated,
        record.unchanged,
        record.rejected,
        record.moved_out,
    ) == (4, 4, 0, 0, 0, 0)
    assert record.finished_at is not None


async def test_reimporting_the_same_file_changes_nothing(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    content = register_csv(
        [
            person(ANNA, units[0]),
            person(BO, units[1]),
            person(CARL, None),
            person(DORA, units[2], protected_identity="true"),
            person(EVA, units[0]),
        ]
    )
    await import_csv(content, as_of=D1)
    before, history = await residents(sessionmaker), await periods(sessionmaker)

    again = await import_csv(content, as_of=D1)
    later = await import_csv(content, as_of=D2, snapshot=True)

    assert counts(again) == counts(later) == (5, 0, 0, 5, 0, 0)
    after = await residents(sessionmaker)
    # Not a new row version (xmin), not even a row lock (xmax): unchanged residents are left
    # alone entirely, not just spared an update of updated_at.
    assert {p: (r.updated_at, r.version) for p, r in after.items()} == {
        p: (r.updated_at, r.version) for p, r in before.items()
    }
    assert await periods(sessionmaker) == history
    assert len(history) == 4


async def test_a_changed_row_is_updated_and_only_that_row(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0]), person(BO, units[0])]), as_of=D1)
    before = await residents(sessionmaker)

    summary = await import_csv(
        register_csv([person(ANNA, units[0], phone="0709999999"), person(BO, units[0])]), as_of=D2
    )

    assert counts(summary) == (2, 0, 1, 1, 0, 0)
    after = await residents(sessionmaker)
    assert after[ANNA].phone == "0709999999"
    assert after[ANNA].updated_at > before[ANNA].updated_at
    assert after[BO].version == before[BO].version


# --- snapshots ------------------------------------------------------------------------------


async def test_snapshot_marks_absent_residents_moved_out_and_their_return_clears_it(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    everyone = [person(ANNA, units[0]), person(BO, units[1]), person(CARL, units[1])]
    await import_csv(register_csv(everyone), as_of=D1, snapshot=True)

    gone = await import_csv(register_csv(everyone[:2]), as_of=D2, snapshot=True)
    assert counts(gone) == (2, 0, 0, 2, 0, 1)
    carl = (await residents(sessionmaker))[CARL]
    assert (carl.moved_out_on, carl.unit) == (D2, None)  # kept, no longer listed
    assert (CARL, units[1].hsa_id, D1, D2) in [p[:4] for p in await periods(sessionmaker)]

    still_gone = await import_csv(register_csv(everyone[:2]), as_of=D2, snapshot=True)
    assert counts(still_gone) == (2, 0, 0, 2, 0, 0)
    partial = await import_csv(register_csv(everyone[:1]), as_of=D2)  # not a snapshot
    assert partial.moved_out == 0

    back = await import_csv(register_csv(everyone), as_of=D3, snapshot=True)
    assert counts(back) == (3, 0, 1, 2, 0, 0)
    carl = (await residents(sessionmaker))[CARL]
    assert (carl.moved_out_on, carl.unit) == (None, units[1].hsa_id)
    assert [p[:4] for p in await periods(sessionmaker) if p[0] == CARL] == [
        (CARL, units[1].hsa_id, D1, D2),
        (CARL, units[1].hsa_id, D3, None),
    ]


async def test_snapshot_moves_nobody_out_when_a_rejected_row_names_no_valid_personnummer(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0]), person(BO, units[0])]), as_of=D1)
    garbled = BO[:-1] + str((int(BO[-1]) + 1) % 10)  # BO, mistyped: the check digit is wrong

    summary = await import_csv(
        register_csv([person(ANNA, units[0]), person(garbled, units[0])]), as_of=D2, snapshot=True
    )

    assert counts(summary) == (2, 0, 0, 1, 1, 0)
    assert "no resident was marked moved out" in summary.warnings[0]
    assert (await residents(sessionmaker))[BO].moved_out_on is None


async def test_snapshot_keeps_a_resident_whose_row_was_rejected_for_another_column(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0]), person(BO, units[0])]), as_of=D1)
    before = await residents(sessionmaker)

    summary = await import_csv(
        register_csv([person(ANNA, units[0]), person(BO, units[1], municipality="13800")]),
        as_of=D2,
        snapshot=True,
    )

    assert counts(summary) == (2, 0, 0, 1, 1, 0)
    assert summary.warnings == []
    assert (await residents(sessionmaker))[BO] == before[BO]  # neither moved out nor changed


async def test_a_snapshot_with_no_valid_row_is_refused(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0])]), as_of=D1)
    with pytest.raises(InvalidInput, match="would mark every resident as moved out"):
        await import_csv(register_csv([]), as_of=D2, snapshot=True)
    assert (await residents(sessionmaker))[ANNA].moved_out_on is None


# --- listing history ------------------------------------------------------------------------


async def test_listing_history_follows_the_care_unit_across_three_extracts(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    u1, u2, _ = units
    await import_csv(register_csv([person(ANNA, u1), person(BO, u1), person(CARL, None)]), as_of=D1)
    await import_csv(register_csv([person(ANNA, u2), person(BO, u1), person(CARL, u1)]), as_of=D2)
    third = await import_csv(register_csv([person(ANNA, None), person(BO, u1), person(CARL, u1)]), as_of=D3)

    assert counts(third) == (3, 0, 1, 2, 0, 0)
    assert [p[:4] for p in await periods(sessionmaker)] == [
        (BO, u1.hsa_id, D1, None),  # never changed: one open period
        (ANNA, u1.hsa_id, D1, D2),
        (ANNA, u2.hsa_id, D2, D3),  # unlisted at D3: nothing open
        (CARL, u1.hsa_id, D2, None),  # first listed at D2
    ]
    stored = await residents(sessionmaker)
    assert (stored[ANNA].unit, stored[BO].unit, stored[CARL].unit) == (None, u1.hsa_id, u1.hsa_id)

    # Where was each listed on a given day (listed_to is exclusive)?
    async def unit_on(pnr: str, day: dt.date) -> str | None:
        rows = await fetch(
            sessionmaker,
            """
            SELECT u.hsa_id FROM listing_periods p JOIN residents r ON r.id = p.resident_id
            JOIN care_units u ON u.id = p.care_unit_id
            WHERE r.personnummer = :pnr AND p.listed_from <= :day
              AND (p.listed_to IS NULL OR p.listed_to > :day)""",
            pnr=pnr,
            day=day,
        )
        assert len(rows) <= 1
        return rows[0][0] if rows else None

    assert await unit_on(ANNA, D1) == u1.hsa_id
    assert await unit_on(ANNA, D2 - dt.timedelta(days=1)) == u1.hsa_id
    assert await unit_on(ANNA, D2) == u2.hsa_id
    assert await unit_on(ANNA, D3) is None
    assert await unit_on(CARL, D1) is None
    assert await unit_on(CARL, D3) == u1.hsa_id


# --- protected identity ---------------------------------------------------------------------


async def test_protected_identity_never_stores_the_address(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0]), person(BO, units[0])]), as_of=D1)
    assert (await residents(sessionmaker))[BO].address_line == "Storgatan 1"

    summary = await import_csv(
        register_csv(
            [
                person(ANNA, units[0], protected_identity="true"),
                person(BO, units[0], protected_identity="TRUE"),  # becomes protected: address cleared
                person(CARL, units[0], protected_identity="1", address_line="", city=""),
            ]
        ),
        as_of=D2,
    )

    assert counts(summary) == (3, 1, 2, 0, 0, 0)
    stored = await residents(sessionmaker)
    for pnr in (ANNA, BO, CARL):
        r = stored[pnr]
        assert r.protected_identity is True
        assert (r.address_line, r.postal_code, r.city) == (None, None, None)
    assert stored[ANNA].phone == "0701234567"  # not an address; needed to invite by SMS


# --- bad rows -------------------------------------------------------------------------------


async def test_each_kind_of_bad_row_is_rejected_with_its_physical_line(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    u = units[0].hsa_id
    valid = f",{u},1380,1380C1010,false,Storgatan 1,302 20,Halmstad,0701234567,true,sv,,"
    header = ",".join(COLUMNS)
    other = [make_personnummer("19700101", n) for n in range(20)]  # one person a line
    lines = [
        header,  # 1
        f'{ANNA},{u},1380,1380C1010,false,"Storgatan 1\nLägenhet 1101",302 20,Halmstad,,,,,',  # 2-3
        BO + valid,  # 4
        ANNA[:-1] + str((int(ANNA[-1]) + 1) % 10) + valid,  # 5
        make_personnummer("19850709", 0) + valid,  # 6
        make_personnummer("20250601", 12) + valid,  # 7
        other[1] + valid.replace(u, "SE2321000131-E999999999999"),  # 8
        other[2] + valid.replace(u, "SE123"),  # 9
        other[3] + valid[:-1] + "2024-02-30,",  # 10
        other[4] + valid[:-1] + "2025-01-16,",  # 11
        other[5] + valid.replace("false", "kanske"),  # 12
        other[6] + valid.replace(",1380,", ",138,"),  # 13
        other[7] + valid.replace("1380C1010", "1380D1010"),  # 14
        other[8] + valid.replace(",sv,", ",SV,"),  # 15
        other[9] + ",too,few",  # 16
        other[10] + valid + ",extra",  # 17
        valid,  # 18
        "19850709-98O5" + valid,  # 19
        other[11] + valid + "1969-12-31",  # 20
        DORA + valid.replace(",true,", ",nej,"),  # 21
        "",  # 22: blank
        other[12] + valid.replace("Storgatan 1", "Storgatan\x001"),  # 23
        f'{EVA},"{u}",1380,1380C1010,"false",x,,,,,"sv",,',  # 24
    ]
    summary = await import_csv("\n".join(lines), as_of=D1)  # no newline at the very end

    assert [(r.line, r.column) for r in summary.rejects] == [
        (5, "personnummer"),
        (6, "personnummer"),
        (7, "personnummer"),
        (8, "care_unit"),
        (9, "care_unit"),
        (10, "deceased_on"),
        (11, "deceased_on"),
        (12, "protected_identity"),
        (13, "municipality"),
        (14, "deso"),
        (15, "language"),
        (16, None),
        (17, None),
        (18, "personnummer"),
        (19, "personnummer"),
        (20, "emigrated_on"),
        (23, None),
    ]
    reasons = {r.line: r.reason for r in summary.rejects}
    assert reasons[5] == "the check digit is wrong"
    assert reasons[6] == "serial number 000 is never assigned"
    assert reasons[7] == "the birth date is in the future"
    # No reason quotes the file's value (it could be a personnummer or an address in the
    # wrong column): the line and the column say where.
    assert reasons[8] == "no care unit has this HSA-id (import the care units first)"
    assert reasons[9].startswith("is not an HSA-id")
    assert reasons[10] == "must be a date written YYYY-MM-DD"
    assert reasons[11] == "is after the date of the extract (as_of 2025-01-15)"
    assert reasons[12] == "must be true or false (also ja/nej, 1/0)"
    assert reasons[13] == "must be a municipality code of 4 digits (e.g. 1380)"
    assert reasons[14].startswith("must be a DeSO code")
    assert reasons[15] == "must be a language code of 2 lowercase letters (e.g. sv)"
    assert reasons[16] == "has 3 fields; the header has 13 columns"
    assert reasons[17] == "has 14 fields; the header has 13 columns"
    assert reasons[18] == "is empty"
    assert reasons[19] == "only digits and one '-' or '+' before the last four are allowed"
    assert reasons[20] == "is before the birth date"
    assert reasons[23] == "contains a NUL byte"

    assert counts(summary) == (21, 4, 0, 0, 17, 0)  # lines 2-3 are one row; 22 is blank
    stored = await residents(sessionmaker)
    assert set(stored) == {ANNA, BO, DORA, EVA}
    assert stored[ANNA].address_line == "Storgatan 1\nLägenhet 1101"  # kept exactly
    assert stored[DORA].digital_mailbox is False
    assert (stored[EVA].unit, stored[EVA].language) == (u, "sv")


async def test_a_personnummer_twice_in_the_file_imports_the_first_row_only(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    content = register_csv(
        [
            person(ANNA, units[0]),  # line 2
            person(BO, units[0]),  # line 3
            person(ANNA[2:8] + "-" + ANNA[8:], units[1]),  # line 4: ANNA, short form
            person(ANNA, units[2], municipality="x"),  # line 5: ANNA, and bad too
        ]
    )
    summary = await import_csv(content, as_of=D1)

    assert counts(summary) == (4, 2, 0, 0, 2, 0)
    assert [(r.line, r.column, r.reason) for r in summary.rejects] == [
        (4, "personnummer", "the same personnummer as line 2 (only that row can be imported)"),
        (5, "personnummer", "the same personnummer as line 2 (only that row can be imported)"),
    ]
    assert (await residents(sessionmaker))[ANNA].unit == units[0].hsa_id
    assert len([p for p in await periods(sessionmaker) if p[0] == ANNA]) == 1


async def test_a_rejected_row_changes_nothing_about_its_resident(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0])]), as_of=D1)
    before, history = await residents(sessionmaker), await periods(sessionmaker)

    summary = await import_csv(
        register_csv([person(ANNA, units[1], phone="0700000000", language="svenska")]), as_of=D2
    )

    assert counts(summary) == (1, 0, 0, 0, 1, 0)
    assert await residents(sessionmaker) == before
    assert await periods(sessionmaker) == history


async def test_an_unclosed_quote_rejects_its_row_and_reading_goes_on(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    good = [person(p, units[0]) for p in (BO, CARL)]
    lines = register_csv(good).splitlines()
    broken = f'{ANNA},{units[0].hsa_id},1380,1380C1010,false,"Storgatan 1,,,,,,,'
    filler = [
        register_csv([person(make_personnummer("19700101", n), units[0])]).splitlines()[1]
        for n in range(1, MAX_RECORD_LINES + 3)
    ]
    content = "\n".join([lines[0], broken, *filler, lines[1], lines[2]]) + "\n"

    summary = await import_csv(content, as_of=D1)

    assert [(r.line, r.reason) for r in summary.rejects] == [
        (2, f"a quoted field is not closed within {MAX_RECORD_LINES} lines")
    ]
    assert summary.inserted == len(filler) + 2
    at_the_end = await import_csv(content + broken + "\n", as_of=D1)
    assert [(r.line, r.reason) for r in at_the_end.rejects][-1] == (
        content.count("\n") + 1,
        "a quoted field is not closed before the end of the file",
    )


async def test_how_the_file_is_cut_into_chunks_does_not_matter(
    sessionmaker: async_sessionmaker[AsyncSession], units: list[CareUnit]
) -> None:
    u = units[0].hsa_id
    content = (
        "\ufeff"
        + ",".join(COLUMNS)
        + "\r\n"
        + f'{ANNA},{u},1380,1380C1010,false,"Gatan 1\r\nLgh 2, ""uppg. B""",302 20,Å,,,,,\r\n'
        + f"{BO},{u},138,1380C1010,false,,,,,,,,\r\n"
        + f'"{CARL}",{u},1380,1380C1010,false,"a\nb\nc",,,,,sv,,\r\n'
        + f"{DORA},{u},1380\r\n"
        + f"{EVA},{u},1380,1380C1010,false,,,,,,,,"
    ).encode()

    async def run(chunk: int) -> tuple[ImportSummary, list[Any]]:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(0, len(content), chunk):
                yield content[i : i + chunk]

        async with sessionmaker() as s, s.begin():
            summary = await import_residents(s, chunks(), as_of=D1, source="t", actor="t", reject_limit=None)
            stored = (
                await s.execute(text("SELECT personnummer, address_line FROM residents ORDER BY 1"))
            ).all()
            await s.rollback()
        return summary, [tuple(r) for r in stored]

    whole = await run(len(content))
    assert counts(whole[0]) == (5, 3, 0, 0, 2, 0)
    assert [(r.line, r.column) for r in whole[0].rejects] == [(4, "municipality"), (8, None)]
    assert (ANNA, 'Gatan 1\r\nLgh 2, "uppg. B"') in whole[1]
    assert (CARL, "a\nb\nc") in whole[1]
    for chunk in (1, 2, 3, 7, 64):
        summary, stored = await run(chunk)
        assert (summary.model_dump(exclude={"import_id"}), stored) == (
            whole[0].model_dump(exclude={"import_id"}),
            whole[1],
        ), chunk


async def test_missing_optional_columns_are_empty_and_order_is_free(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # Names are matched without regard to case or surrounding spaces.
    content = f"Care_Unit ,PERSONNUMMER,language\n{units[0].hsa_id},{ANNA},en\n"

    summary = await import_csv(content, as_of=D1)

    assert counts(summary) == (1, 1, 0, 0, 0, 0)
    anna = (await residents(sessionmaker))[ANNA]
    assert (anna.unit, anna.language, anna.municipality, anna.address_line) == (
        units[0].hsa_id,
        "en",
        None,
        None,
    )
    assert (anna.protected_identity, anna.digital_mailbox) == (False, False)


async def test_rejects_are_capped_in_the_summary_but_all_reach_the_sink(
    import_csv: ImportCsv, units: list[CareUnit]
) -> None:
    numbers = [make_personnummer("19700101", n) for n in range(1, 8)]
    rows = [person(p[:-1] + str((int(p[-1]) + 1) % 10), units[0]) for p in numbers]
    seen: list[Reject] = []
    summary = await import_csv(register_csv(rows), as_of=D1, reject_limit=2, on_reject=seen.append)
    assert summary.rejected == 7
    assert [r.line for r in seen] == [2, 3, 4, 5, 6, 7, 8]
    assert summary.rejects == seen[:2]
    assert summary.rejects_truncated == 5


# --- file-level errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"\n" + ANNA.encode() + b"\n", "the file has no header row"),
        (b"care_unit,municipality\nSE2321000131-E1,1380\n", "the header has no personnummer column"),
        (b"personnummer,shoe_size\n" + ANNA.encode() + b",44\n", "unknown column(s) 'shoe_size'"),
        (b"personnummer,city,CITY\n", "names column(s) city more than once"),
        (
            # UTF-8 as far as the encoding is detected (64 KiB), then a byte that is not
            b"personnummer,city\n"
            + (ANNA.encode() + b",G\xc3\xb6teborg\n") * 4000
            + BO.encode()
            + b",G\xf6teborg\n",
            "the file cannot be read as utf-8: line 4002 has the byte 0xF6",
        ),
        # Windows-1252 (detected): the header's name is read, and unknown.
        (b"personnummer,st\xe4d\n", "unknown column(s) 'st\xe4d'"),
        # Given as UTF-8, it is not.
        (b"personnummer,st\xe4d\n;utf-8", "cannot be read as utf-8: line 1 has the byte 0xE4"),
        (b"\xef\xbb\xbf" + ANNA.encode() + b";SE2321000131-E1;Storgatan 1\r\n", "the file has no header row"),
    ],
)
async def test_a_problem_with_the_file_itself_imports_nothing(
    import_csv: ImportCsv,
    sessionmaker: async_sessionmaker[AsyncSession],
    content: bytes,
    message: str,
) -> None:
    content, _, encoding = content.partition(b"\n;")
    with pytest.raises(InvalidInput) as raised:
        await import_csv(content, as_of=D1, chunk=16, encoding=encoding.decode() or None)
    assert message in raised.value.detail
    assert ANNA not in raised.value.detail  # never a row's personnummer
    assert await fetch(sessionmaker, "SELECT count(*) FROM residents") == [(0,)]
    assert await fetch(sessionmaker, "SELECT count(*) FROM register_imports") == [(0,)]


async def test_extracts_must_be_imported_in_date_order(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await import_csv(register_csv([person(ANNA, units[0])]), as_of=D2)
    with pytest.raises(InvalidInput, match="before the last residents import's as_of"):
        await import_csv(register_csv([person(ANNA, units[1])]), as_of=D1)
    tomorrow = local_today() + dt.timedelta(days=1)
    with pytest.raises(InvalidInput, match="is after today"):
        await import_csv(register_csv([person(ANNA, units[1])]), as_of=tomorrow)
    assert (await residents(sessionmaker))[ANNA].unit == units[0].hsa_id


# --- the API --------------------------------------------------------------------------------


async def test_api_imports_a_csv_body_and_answers_with_the_summary(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    units: list[CareUnit],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    content = register_csv([person(ANNA, units[0]), person(BO, units[0], deso="1380X")])
    response = await api.post(
        "/v1/residents/import",
        params={"as_of": D1.isoformat(), "snapshot": "true"},
        content=content.encode(),
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["rows"], body["inserted"], body["rejected"], body["rejects_truncated"]) == (2, 1, 1, 0)
    assert body["rejects"] == [{"line": 3, "column": "deso", "reason": body["rejects"][0]["reason"]}]
    [record] = await fetch(sessionmaker, "SELECT source, actor, as_of, snapshot FROM register_imports")
    assert (record.source, record.as_of, record.snapshot) == ("api", D1, True)
    assert record.actor.startswith("operator-")


async def test_api_rejects_a_bad_header_with_a_problem_and_imports_nothing(
    api: httpx.AsyncClient, operator: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    response = await api.post(
        "/v1/residents/import",
        content=b"pnr,care_unit\n19850709-3825,\n",
        headers={**operator, "Content-Type": "text/csv"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert "unknown column(s) 'pnr'" in response.json()["detail"]
    assert await fetch(sessionmaker, "SELECT count(*) FROM residents") == [(0,)]


async def test_api_import_needs_an_operator_key(api: httpx.AsyncClient, make_key: KeyMaker) -> None:
    body = register_csv([{"personnummer": ANNA}]).encode()
    headers = {"Content-Type": "text/csv"}
    assert (await api.post("/v1/residents/import", content=body, headers=headers)).status_code == 401
    portal = await make_key("portal")
    response = await api.post("/v1/residents/import", content=body, headers={**headers, **portal})
    assert response.status_code == 403


# --- the command line -----------------------------------------------------------------------


def test_cli_imports_writes_the_reject_report_and_exits_2(
    database_url: str, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (engine: the harness empties the tables through it after the test.)
    from typer.testing import CliRunner

    from halsosamtal.cli.app import app
    from halsosamtal.core import cli

    monkeypatch.setattr(cli, "database_url", lambda: database_url)
    source = tmp_path / "register.csv"
    source.write_text(
        register_csv(
            [{"personnummer": ANNA}, {"personnummer": "12345"}, {"personnummer": BO, "language": "Svenska"}]
        )
    )

    result = CliRunner().invoke(app, ["import", "residents", str(source), "--as-of", "2025-01-15"])

    assert result.exit_code == 2, result.output
    assert "rows 3: inserted 1, updated 0, unchanged 0, rejected 2" in result.output
    assert "read as utf-8 (detected), delimiter ',' (detected), LF line endings" in result.output
    report = tmp_path / "register.rejects.csv"
    with report.open(newline="") as f:
        assert list(csv.reader(f)) == [
            ["line", "column", "reason"],
            ["3", "personnummer", "must have 10 or 12 digits"],
            ["4", "language", "must be a language code of 2 lowercase letters (e.g. sv)"],
        ]
    assert list(tmp_path.glob(".*partial")) == []

    clean = tmp_path / "clean.csv"
    clean.write_text(register_csv([{"personnummer": CARL}]))
    result = CliRunner().invoke(app, ["import", "residents", str(clean), "--as-of", "2025-01-15"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "clean.rejects.csv").exists()

    result = CliRunner().invoke(app, ["import", "residents", str(clean), "--as-of", "2024-01-01"])
    assert result.exit_code == 1
    assert "must be imported in date order" in result.output


async def test_booleans_read_as_parse_bool_reads_them(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    # (The quoted line break comes last: it makes its row two lines long.)
    words = ["true", "false", "", "1", "0", "yes", "no", "ja", "nej", "t", "f", "y", "n",
             " TRUE ", "Ja", "NEJ\t", "maybe", "2", "SANT", "-", "true\r\n"]  # fmt: skip
    numbers = [make_personnummer("19700101", n) for n in range(1, len(words) + 1)]
    rows = [{"personnummer": p, "digital_mailbox": w} for p, w in zip(numbers, words, strict=True)]

    summary = await import_csv(register_csv(rows), as_of=D1)

    stored = await residents(sessionmaker)
    rejected = {r.line for r in summary.rejects}
    for line, (pnr, word) in enumerate(zip(numbers, words, strict=True), start=2):
        expected = parse_bool(word)
        if expected is None:
            assert line in rejected, word
        else:
            assert stored[pnr].digital_mailbox is expected, word
    assert summary.rejected == 9


async def test_a_quoted_line_that_copy_would_read_as_the_end_of_data_is_rejected(
    import_csv: ImportCsv, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    content = f'personnummer,address_line\n{ANNA},"Gatan 1\n\\.\nmore"\n{BO},Vägen 2\n'

    summary = await import_csv(content, as_of=D1)

    assert [(r.line, r.reason) for r in summary.rejects] == [
        (2, "a line inside a quoted field starts with '\\.'")
    ]
    assert set(await residents(sessionmaker)) == {BO}
