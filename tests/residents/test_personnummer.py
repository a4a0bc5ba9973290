"""The personnummer validator, and the SQL the register import runs in its place.

``halsosamtal.residents.personnummer`` is checked against python-stdnum (where stdnum is
right) and the ``personnummer`` PyPI package; the importer's SQL is checked against ``parse``
itself over a large random set with the awkward cases over-represented.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator

import pytest
from personnummer import personnummer as pypi_personnummer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core.database import raw_connection
from halsosamtal.residents import personnummer
from halsosamtal.residents.importer import personnummer_query, reference_params
from halsosamtal.residents.personnummer import Identity, InvalidPersonnummer
from tests.residents.support import make_personnummer as make

REFERENCE = dt.date(2026, 3, 1)


def parse_or_reason(value: str, reference: dt.date) -> Identity | str:
    try:
        return personnummer.parse(value, reference=reference)
    except InvalidPersonnummer as exc:
        return exc.reason


# --- the Python validator -------------------------------------------------------------------


def normal_numbers(rng: random.Random, count: int, today: dt.date) -> Iterator[str]:
    """Ordinary numbers: real past dates (no 29 February, no birthday later this year, where
    stdnum's year-only century rule differs), serial 001-999, no coordination number, half
    of them with a wrong check digit."""
    start = dt.date(1920, 1, 1)
    while count:
        birth = start + dt.timedelta(days=rng.randrange((today - start).days))
        if (birth.month, birth.day) == (2, 29) or birth.year == today.year:
            continue
        count -= 1
        serial = rng.randint(1, 999)
        right = int(make(birth.strftime("%Y%m%d"), serial)[-1])
        check = right if rng.random() < 0.5 else (right + rng.randint(1, 9)) % 10
        yield make(
            birth.strftime("%Y%m%d"), serial, check=check, sep=rng.choice(["", "-"]), short=rng.random() < 0.3
        )


def test_agrees_with_stdnum_on_normal_numbers() -> None:
    today = dt.date.today()
    values = list(normal_numbers(random.Random(1), 5000, today))
    valid = [personnummer.is_valid(v, reference=today) for v in values]
    assert 2000 < sum(valid) < 3000
    assert [personnummer.stdnum_agrees(v) for v in values] == valid


def test_coordination_number_is_accepted_and_flagged_though_stdnum_rejects_it() -> None:
    value = make("19850709", 123, coordination=True, sep="-")  # day 69
    assert not personnummer.stdnum_agrees(value)
    identity = personnummer.parse(value, reference=REFERENCE)
    assert identity.coordination_number
    assert identity.birth_date == dt.date(1985, 7, 9)
    assert identity.personnummer == value.replace("-", "")  # the number keeps day 69
    assert personnummer.parse(value.replace("-", "")[2:], reference=REFERENCE) == identity


def test_serial_000_is_rejected_though_stdnum_accepts_it() -> None:
    value = make("19850709", 0, sep="-")
    assert personnummer.stdnum_agrees(value)
    assert parse_or_reason(value, REFERENCE) == "serial number 000 is never assigned"


def test_plus_in_the_short_form_means_100_or_older() -> None:
    minus = make("19250415", 238, short=True, sep="-")
    plus = minus.replace("-", "+")
    assert personnummer.parse(minus, reference=REFERENCE).birth_date == dt.date(2025, 4, 15)
    assert personnummer.parse(plus, reference=REFERENCE).birth_date == dt.date(1925, 4, 15)
    # In the 12-digit form the century is written out and '+' changes nothing.
    long_plus = make("19250415", 238, sep="+")
    assert personnummer.parse(long_plus, reference=REFERENCE).birth_date == dt.date(1925, 4, 15)


@pytest.mark.parametrize(
    ("birth", "reference", "expected"),
    [
        ("20260301", dt.date(2026, 3, 1), dt.date(2026, 3, 1)),  # born on the day: age 0
        ("20260302", dt.date(2026, 3, 1), dt.date(1926, 3, 2)),  # a day later: 99 years old
        ("19991231", dt.date(2026, 3, 1), dt.date(1999, 12, 31)),
        ("20000101", dt.date(2026, 3, 1), dt.date(2000, 1, 1)),
        ("20260302", dt.date(2026, 3, 2), dt.date(2026, 3, 2)),  # the same number, a day on
        ("19271231", dt.date(2027, 12, 30), dt.date(1927, 12, 31)),
        ("20271231", dt.date(2027, 12, 31), dt.date(2027, 12, 31)),
    ],
)
def test_short_form_century_is_taken_relative_to_the_reference_date(
    birth: str, reference: dt.date, expected: dt.date
) -> None:
    value = make(birth, 417, short=True, sep="-")
    assert personnummer.parse(value, reference=reference).birth_date == expected
    assert personnummer.parse(value.replace("-", ""), reference=reference).birth_date == expected


def test_29_february_exists_only_in_leap_years() -> None:
    assert personnummer.parse(make("20000229", 12, sep="-"), reference=REFERENCE).birth_date == (
        dt.date(2000, 2, 29)
    )
    assert parse_or_reason(make("19000229", 12), REFERENCE) == "the date part is not a real date"
    assert parse_or_reason(make("20230229", 12), REFERENCE) == "the date part is not a real date"
    # Short form: '-' gives 2000 (a leap year), '+' gives 1900 (not one).
    short = make("20000229", 12, short=True, sep="-")
    assert personnummer.parse(short, reference=REFERENCE).birth_date == dt.date(2000, 2, 29)
    assert parse_or_reason(short.replace("-", "+"), REFERENCE) == "the date part is not a real date"
    # A coordination number on 29 February (day 89).
    coordinated = make("20040229", 20, coordination=True)
    assert personnummer.parse(coordinated, reference=REFERENCE).birth_date == dt.date(2004, 2, 29)


def test_future_birth_dates_are_rejected() -> None:
    value = make("20260302", 417)
    assert parse_or_reason(value, dt.date(2026, 3, 1)) == "the birth date is in the future"
    assert personnummer.parse(value, reference=dt.date(2026, 3, 2)).birth_date == dt.date(2026, 3, 2)


def cross_check_values(rng: random.Random, count: int, today: dt.date) -> Iterator[str]:
    """ASCII numbers of every kind the PyPI package judges by the same rules as ours: wrong
    check digits, serial 000, coordination numbers, impossible dates; short forms only away
    from this year (the package picks the century by the year alone)."""
    while count:
        year = rng.randint(1900, today.year - 1)
        month = rng.choice([rng.randint(1, 12), rng.randint(1, 12), 0, 13])
        day = rng.choice([rng.randint(1, 28), rng.randint(1, 28), 29, 30, 31, 0, 32])
        short = rng.random() < 0.3
        if short and year % 100 == today.year % 100:
            continue
        count -= 1
        birth = f"{year:04d}{month:02d}{day:02d}"
        serial = rng.choice([rng.randint(1, 999), rng.randint(1, 999), 0])
        coordination = 0 < day <= 31 and rng.random() < 0.2
        right = int(make(birth, serial, coordination=coordination)[-1])
        check = right if rng.random() < 0.7 else (right + 1) % 10
        sep = "+" if short and today.year - year >= 100 else rng.choice(["", "-"])
        yield make(birth, serial, coordination=coordination, check=check, sep=sep, short=short)


def test_cross_check_with_the_personnummer_package() -> None:
    today = dt.date.today()
    values = list(cross_check_values(random.Random(2), 20_000, today))
    accepted = 0
    for value in values:
        ours = parse_or_reason(value, today)
        theirs = pypi_personnummer.valid(value)
        assert isinstance(ours, Identity) == theirs, (value, ours)
        if theirs:
            accepted += 1
            other = pypi_personnummer.parse(value)
            assert ours.birth_date == other.get_date(), value
            assert ours.coordination_number == other.is_coordination_number(), value
            assert (ours.sex == "M") == other.is_male(), value
    assert accepted > 2000


def test_parse_rejects_digits_that_are_not_ascii() -> None:
    assert parse_or_reason("\u0661\u0669850709-9805", REFERENCE) == (
        "only digits and one '-' or '+' before the last four are allowed"
    )
    assert isinstance(parse_or_reason("\u00b2985 0709-9805", REFERENCE), str)


# --- the importer's SQL agrees with parse ---------------------------------------------------

FULLWIDTH = {str(d): chr(0xFF10 + d) for d in range(10)}
NOISE = [
    " ",
    ":",
    "-",
    "+",
    "\u2013",
    "\u2212",
    "\u00a0",
    "\u3000",
    "\uff1a",
    "x",
    "A",
    "/",
    "\t",
    ".",
    "0",
    "9",
]


def sql_cases(rng: random.Random, count: int) -> Iterator[tuple[str, dt.date]]:
    """(value, reference) pairs: every form, with the edge cases over-represented, then
    mangled in the ways stdnum's compaction cares about (and some it does not)."""
    references = [
        REFERENCE,
        dt.date(2000, 2, 28),
        dt.date(2000, 2, 29),
        dt.date(2024, 12, 31),
        dt.date(2025, 1, 1),
        dt.date(1999, 12, 31),
    ]
    for _ in range(count):
        reference = rng.choice(references)
        kind = rng.random()
        if kind < 0.15:  # right around the reference date's birthday, 0, 1 or ~100 years ago
            around = reference - dt.timedelta(days=rng.randint(-3, 3))
            back = rng.choice([0, 1, 99, 100, 101])
            birth = around.replace(year=around.year - back, day=min(around.day, 28))
            year, month, day = birth.year, birth.month, around.day
        elif kind < 0.5:  # any real date
            birth = dt.date(1890, 1, 1) + dt.timedelta(days=rng.randrange(50_000))
            year, month, day = birth.year, birth.month, birth.day
        else:
            year = rng.choice([rng.randint(1880, 2030), 1900, 2000, 2004, 1904, 0, 2100])
            month = rng.choice([rng.randint(1, 12), 2, 2, 0, 13, 99])
            day = rng.choice([rng.randint(1, 28), 28, 29, 29, 30, 31, 0, 32, 60])
        birth_text = f"{year:04d}{month:02d}{day:02d}"
        coordination = rng.random() < 0.15 and day <= 31
        serial = rng.choice([rng.randint(1, 999), 0, 1, 999])
        right = int(make(birth_text, serial, coordination=coordination)[-1])
        check = right if rng.random() < 0.75 else rng.randint(0, 9)
        short = rng.random() < 0.4
        sep = rng.choice(["", "-", "-", "+"])
        value = make(birth_text, serial, coordination=coordination, check=check, sep=sep, short=short)
        mangle = rng.random()
        if mangle < 0.08:  # noise somewhere
            pos = rng.randint(0, len(value))
            value = value[:pos] + rng.choice(NOISE) + value[pos:]
        elif mangle < 0.12:  # a digit too many or too few
            value = value + str(rng.randint(0, 9)) if rng.random() < 0.5 else value[:-1]
        elif mangle < 0.16:  # fullwidth digits, which stdnum maps to ASCII
            value = "".join(FULLWIDTH.get(c, c) if rng.random() < 0.5 else c for c in value)
        elif mangle < 0.20:  # spaced out, as people type it
            value = " ".join(value[i : i + 2] for i in range(0, len(value), 2))
        elif mangle < 0.22:
            value = rng.choice(["", " ", "-", "+", "0", "12345", "abcdefghij", "1985-07-09-9805"])
        yield value, reference


async def sql_parse(
    session: AsyncSession, values: list[str], reference: dt.date
) -> list[tuple[str | None, str, dt.date | None, str, bool | None]]:
    await session.execute(text("CREATE TEMP TABLE pnr_cases (id int, personnummer text) ON COMMIT DROP"))
    conn = await raw_connection(await session.connection())
    await conn.copy_records_to_table("pnr_cases", records=list(enumerate(values)))
    rows = await session.execute(
        text(
            f"SELECT pnr_problem, pnr_normal, pnr_birth_date, pnr_sex, coordination "
            f"FROM ({personnummer_query('pnr_cases')}) p ORDER BY id"
        ),
        reference_params(reference),
    )
    result = [tuple(r) for r in rows]
    await session.execute(text("DROP TABLE pnr_cases"))
    return result  # type: ignore[return-value]


async def test_the_import_sql_agrees_with_parse(session: AsyncSession) -> None:
    cases = list(sql_cases(random.Random(3), 60_000))
    by_reference: dict[dt.date, list[str]] = {}
    for value, reference in cases:
        by_reference.setdefault(reference, []).append(value)
    seen_reasons: set[str] = set()
    accepted = 0
    async with session.begin():
        for reference, values in by_reference.items():
            for value, (problem, normal, birth, sex, coordination) in zip(
                values, await sql_parse(session, values, reference), strict=True
            ):
                expected = parse_or_reason(value, reference)
                if isinstance(expected, Identity):
                    accepted += 1
                    assert problem is None, (value, reference, problem)
                    assert (normal, birth, sex, coordination) == (
                        expected.personnummer,
                        expected.birth_date,
                        expected.sex,
                        expected.coordination_number,
                    ), (value, reference)
                elif value == "":
                    assert problem == "is empty"  # the importer's clearer word for ''
                else:
                    seen_reasons.add(expected)
                    assert problem == expected, (value, reference)
        await session.rollback()
    assert accepted > 15_000
    assert seen_reasons == {
        "must have 10 or 12 digits",
        "only digits and one '-' or '+' before the last four are allowed",
        "the check digit is wrong",
        "serial number 000 is never assigned",
        "the date part is not a real date",
        "the birth date is in the future",
    }


async def test_the_import_sql_rejects_digits_that_are_not_ascii(session: AsyncSession) -> None:
    values = ["\u0661\u0669850709-9805", "\u00b2985 0709-9805", "19850709-98\u0660\u0665"]
    async with session.begin():
        rows = await sql_parse(session, values, REFERENCE)
        await session.rollback()
    assert [r[0] for r in rows] == ["only digits and one '-' or '+' before the last four are allowed"] * 3
