"""How the residents import writes: without the foreign keys' row triggers where it may (and the
references still hold), with them where it may not, and the shortcut for unchanged rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from halsosamtal.residents import importer
from halsosamtal.units.models import CareUnit
from tests.residents.conftest import ImportCsv
from tests.residents.support import register_csv
from tests.residents.test_import import ANNA, BO, CARL, D1, D2, D3, counts, periods, person, residents

ORPHANS = """
SELECT (SELECT count(*) FROM residents r
        WHERE r.care_unit_id IS NOT NULL
          AND NOT EXISTS (SELECT FROM care_units u WHERE u.id = r.care_unit_id)),
       (SELECT count(*) FROM listing_periods p
        WHERE NOT EXISTS (SELECT FROM residents r WHERE r.id = p.resident_id)
           OR NOT EXISTS (SELECT FROM care_units u WHERE u.id = p.care_unit_id))
"""


@pytest.fixture(params=["triggers off", "triggers on"])
def write_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test twice: as the import runs here (a superuser: the triggers off), and as it runs
    for a role that may not switch them off."""
    if request.param == "triggers on":

        async def keep_them_on(session: AsyncSession) -> str | None:
            return None

        monkeypatch.setattr(importer, "_foreign_key_triggers_off", keep_them_on)
    return str(request.param)


async def test_the_schema_lets_the_import_switch_the_foreign_key_triggers_off(session: AsyncSession) -> None:
    # Should this fail, the tables got a trigger, a rule or a foreign key the import does not
    # guarantee itself (see _foreign_key_triggers_off): the import still works, 3x slower.
    async with session.begin():
        assert await importer._foreign_key_triggers_off(session) == "origin"
        assert (await session.execute(text("SHOW session_replication_role"))).scalar_one() == "replica"
        await session.rollback()


async def test_a_role_that_is_not_superuser_needs_the_grant_to_switch_them_off(session: AsyncSession) -> None:
    role = f"importer_{uuid.uuid4().hex[:8]}"
    async with session.begin():  # the role, the grant and all: rolled back
        await session.execute(text(f"CREATE ROLE {role}"))
        await session.execute(text(f"SET LOCAL ROLE {role}"))
        assert await importer._foreign_key_triggers_off(session) is None
        await session.execute(text("RESET ROLE"))
        await session.execute(text(f"GRANT SET ON PARAMETER session_replication_role TO {role}"))
        await session.execute(text(f"SET LOCAL ROLE {role}"))
        assert await importer._foreign_key_triggers_off(session) == "origin"
        await session.rollback()


@pytest.mark.parametrize(
    "ddl",
    [
        (
            "CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'",
            "CREATE TRIGGER audit AFTER INSERT ON residents FOR EACH ROW EXECUTE FUNCTION pg_temp.noop()",
        ),
        ("ALTER TABLE residents ADD COLUMN home_unit bigint REFERENCES care_units (id)",),
        ("CREATE RULE quiet AS ON INSERT TO listing_periods WHERE false DO INSTEAD NOTHING",),
    ],
    ids=["a trigger of its own", "another foreign key", "a rule"],
)
async def test_the_triggers_stay_on_when_the_import_cannot_vouch_for_what_they_check(
    session: AsyncSession, ddl: tuple[str, ...]
) -> None:
    async with session.begin():
        for statement in ddl:
            await session.execute(text(statement))
        assert await importer._foreign_key_triggers_off(session) is None
        assert (await session.execute(text("SHOW session_replication_role"))).scalar_one() == "origin"
        await session.rollback()


async def test_listing_history_and_references_are_the_same_either_way(
    write_mode: str,
    import_csv: ImportCsv,
    units: list[CareUnit],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    u1, u2, _ = units
    await import_csv(register_csv([person(ANNA, u1), person(BO, u1), person(CARL, None)]), as_of=D1)
    await import_csv(register_csv([person(ANNA, u2), person(BO, u1), person(CARL, u1)]), as_of=D2)
    last = await import_csv(register_csv([person(ANNA, None), person(BO, u2)]), as_of=D3, snapshot=True)

    assert counts(last) == (2, 0, 2, 0, 0, 1)
    assert [p[:4] for p in await periods(sessionmaker)] == [
        (BO, u1.hsa_id, D1, D3),
        (BO, u2.hsa_id, D3, None),
        (ANNA, u1.hsa_id, D1, D2),
        (ANNA, u2.hsa_id, D2, D3),
        (CARL, u1.hsa_id, D2, D3),  # moved out at D3
    ]
    async with sessionmaker() as s:
        assert tuple((await s.execute(text(ORPHANS))).one()) == (0, 0)


async def test_the_setting_is_restored_for_the_rest_of_the_callers_transaction(
    sessionmaker: async_sessionmaker[AsyncSession], units: list[CareUnit]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield register_csv([person(ANNA, units[0])]).encode()

    async with sessionmaker() as s, s.begin():
        await importer.import_residents(s, chunks(), as_of=D1, source="test", actor="test")
        assert (await s.execute(text("SHOW session_replication_role"))).scalar_one() == "origin"


async def test_care_units_stay_locked_until_the_import_commits(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, units: list[CareUnit]
) -> None:
    """What each foreign key check would lock, the import locks once: until it commits, the
    units it matched rows with cannot be deleted; after, the foreign key refuses it."""

    async def chunks() -> AsyncIterator[bytes]:
        yield register_csv([person(ANNA, units[0])]).encode()

    async def delete_unit() -> None:
        async with engine.begin() as conn:
            await conn.execute(text("SET LOCAL lock_timeout = '200ms'"))
            await conn.execute(text("DELETE FROM care_units WHERE id = :id"), {"id": units[0].id})

    async with sessionmaker() as s, s.begin():
        await importer.import_residents(s, chunks(), as_of=D1, source="test", actor="test")
        with pytest.raises(DBAPIError, match="lock timeout"):
            await delete_unit()
    with pytest.raises(IntegrityError, match=r"fk_(residents|listing_periods)_care_unit_id_care_units"):
        await delete_unit()


# --- rows that repeat what is stored --------------------------------------------------------


async def test_only_rows_written_exactly_as_stored_take_the_shortcut_and_the_result_is_the_same(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    u1, u2, _ = units
    first = [
        person(ANNA, u1),
        person(BO, None, deceased_on="2024-12-01"),
        person(CARL, u2, protected_identity="true", address_line="", postal_code="", city=""),
    ]
    await import_csv(register_csv(first), as_of=D1)
    before, history = await residents(sessionmaker), await periods(sessionmaker)

    def again(changes: dict[str, dict[str, str]]) -> list[dict[str, str]]:
        return [{**row, **changes.get(row["personnummer"], {})} for row in first]

    # Written otherwise, but the same: the 10-digit form, '+' in the 12-digit one, TRUE, an
    # empty language (Swedish), an address the protected identity drops. Unchanged.
    same = again(
        {
            ANNA: {"personnummer": ANNA[2:8] + "-" + ANNA[8:], "language": ""},
            BO: {"personnummer": BO[:8] + "+" + BO[8:], "digital_mailbox": "TRUE"},
            CARL: {"address_line": "Hemlig väg 1"},
        }
    )
    summary = await import_csv(register_csv(same), as_of=D2)
    assert counts(summary) == (3, 0, 0, 3, 0, 0)
    # Exactly as stored, but no longer valid: an HSA-id no unit has, for a resident without a
    # unit, is rejected as in any row, not taken for the stored "no unit".
    summary = await import_csv(
        register_csv(again({BO: {"care_unit": "SE2321000131-E999999999999"}})), as_of=D2
    )
    assert [(r.line, r.column) for r in summary.rejects] == [(3, "care_unit")]
    # The same row twice: the second is a duplicate, as always.
    summary = await import_csv(register_csv([*first, first[0]]), as_of=D2)
    assert counts(summary) == (4, 0, 0, 3, 1, 0)
    assert summary.rejects[0].reason == "the same personnummer as line 2 (only that row can be imported)"

    assert await residents(sessionmaker) == before
    assert await periods(sessionmaker) == history

    # One field differs: that resident, and only that one, is updated.
    summary = await import_csv(register_csv(again({CARL: {"phone": "0709999999"}})), as_of=D3)
    assert counts(summary) == (3, 0, 1, 2, 0, 0)
    after = await residents(sessionmaker)
    assert after[CARL].phone == "0709999999"
    assert {p: r.version for p, r in after.items() if p != CARL} == {
        p: r.version for p, r in before.items() if p != CARL
    }


async def test_a_moved_out_resident_in_the_file_again_is_back_even_when_the_row_is_as_stored(
    import_csv: ImportCsv, units: list[CareUnit], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    everyone = [person(ANNA, units[0]), person(BO, units[0])]
    await import_csv(register_csv(everyone), as_of=D1, snapshot=True)
    await import_csv(register_csv(everyone[:1]), as_of=D2, snapshot=True)
    assert (await residents(sessionmaker))[BO].moved_out_on == D2

    back = await import_csv(register_csv(everyone), as_of=D3, snapshot=True)

    assert counts(back) == (2, 0, 1, 1, 0, 0)
    assert (await residents(sessionmaker))[BO].moved_out_on is None


def test_the_shortcut_compares_every_column_the_file_has() -> None:
    # A column added to the file must be compared in _UNCHANGED_SQL too, or a row that changes
    # only that column would be taken for unchanged.
    for column in importer.COLUMNS:
        assert f"s.{column}" in importer._unchanged_sql(frozenset(importer.COLUMNS)), column


def test_the_shortcut_keeps_the_columns_the_checked_rows_have() -> None:
    assert tuple(c for c, _ in importer._VALUE_TYPES) == importer._INSERTED[1:]
