"""The demo-data generator: deterministic, realistic, and bad exactly where asked.

Pure unit tests (no database). Every row is checked by rules written here, independently of
the generator: a good row must break none, a bad row exactly the one its kind names.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from stdnum import luhn

from halsosamtal.residents import demo, personnummer
from halsosamtal.residents.demo import (
    BAD_ROW_KINDS,
    RESIDENT_COLUMNS,
    DemoCareUnit,
    DemoSummary,
    demo_care_units,
    format_personnummer,
    write_care_units_csv,
    write_demo_csv,
)
from halsosamtal.residents.personnummer import InvalidPersonnummer

REFERENCE = dt.date(2026, 3, 1)
ROWS = 20_000
HALLAND = {"1315", "1380", "1381", "1382", "1383", "1384"}
HSA = re.compile(r"^SE[0-9]{10}-[A-Za-z0-9]{1,20}$")
DESO = re.compile(r"^[0-9]{4}[ABC][0-9]{4}$")
PHONE = re.compile(r"^\+4670[0-9]{7}$")
POSTAL = re.compile(r"^[0-9]{3} [0-9]{2}$")
PNR_REASONS = {
    "the check digit is wrong": "wrong_check_digit",
    "serial number 000 is never assigned": "serial_000",
    "the date part is not a real date": "impossible_date",
}
KINDS = {
    "wrong_check_digit", "impossible_date", "serial_000", "unknown_care_unit",
    "malformed_hsa_id", "bad_deceased_date", "duplicate_personnummer", "too_few_columns",
    "bad_municipality", "malformed_deso", "bad_boolean", "empty_personnummer",
    "letters_in_personnummer",
}  # fmt: skip


def generate(**kwargs: object) -> tuple[str, DemoSummary]:
    args: dict[str, object] = {"residents": ROWS, "seed": 7, "reference": REFERENCE} | kwargs
    out = io.StringIO()
    summary = write_demo_csv(out, **args)  # type: ignore[arg-type]
    return out.getvalue(), summary


def data_rows(text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == list(RESIDENT_COLUMNS)
    return list(reader)


@dataclass
class Checked:
    row: list[str]
    defects: set[str]
    identity: personnummer.Identity | None


def check_rows(rows: list[list[str]], units: set[str]) -> Iterator[Checked]:
    """Each row with the rules it breaks; earlier good rows count for duplicates."""
    seen: set[str] = set()
    for row in rows:
        found: set[str] = set()
        identity = None
        if len(row) < len(RESIDENT_COLUMNS):
            yield Checked(row, {"too_few_columns"}, None)
            continue
        assert len(row) == len(RESIDENT_COLUMNS), row
        pnr, unit, municipality, deso, protected, _, _, _, _, mailbox, _, deceased, emigrated = row
        if pnr == "":
            found.add("empty_personnummer")
        elif re.search(r"[^0-9+-]", pnr):
            found.add("letters_in_personnummer")
        else:
            try:
                identity = personnummer.parse(pnr, reference=REFERENCE)
            except InvalidPersonnummer as exc:
                found.add(PNR_REASONS.get(exc.reason, f"other personnummer: {exc.reason}"))
            else:
                if identity.personnummer in seen:
                    found.add("duplicate_personnummer")
        if unit:
            if not HSA.match(unit):
                found.add("malformed_hsa_id")
            elif unit not in units:
                found.add("unknown_care_unit")
        if not re.fullmatch(r"[0-9]{4}", municipality):
            found.add("bad_municipality")
        elif municipality not in HALLAND:
            found.add("other: municipality outside Halland")
        if deso and not DESO.match(deso):
            found.add("malformed_deso")
        elif deso and re.fullmatch(r"[0-9]{4}", municipality) and deso[:4] != municipality:
            found.add("other: DeSO in another municipality")
        if protected not in ("true", "false") or mailbox not in ("true", "false"):
            found.add("bad_boolean")
        for column, value in (("deceased", deceased), ("emigrated", emigrated)):
            if value:
                try:
                    dt.date.fromisoformat(value)
                except ValueError:
                    found.add("bad_deceased_date" if column == "deceased" else "other: emigrated_on")
        if not found and identity is not None:
            seen.add(identity.personnummer)
        yield Checked(row, found, identity)


@pytest.fixture(scope="module")
def units() -> list[DemoCareUnit]:
    return demo_care_units()


@pytest.fixture(scope="module")
def with_bad() -> tuple[str, DemoSummary]:
    return generate(bad_rows=0.01)


@pytest.fixture(scope="module")
def checked(with_bad: tuple[str, DemoSummary], units: list[DemoCareUnit]) -> list[Checked]:
    return list(check_rows(data_rows(with_bad[0]), {u.hsa_id for u in units}))


@pytest.fixture(scope="module")
def good(checked: list[Checked]) -> list[Checked]:
    return [c for c in checked if not c.defects]


# -- determinism and streaming


def test_same_arguments_give_the_same_bytes(with_bad: tuple[str, DemoSummary]) -> None:
    again, summary = generate(bad_rows=0.01)
    assert again == with_bad[0]
    assert summary == with_bad[1]


def test_another_seed_gives_other_rows(with_bad: tuple[str, DemoSummary]) -> None:
    other, _ = generate(bad_rows=0.01, seed=8)
    assert other != with_bad[0]
    assert other.count("\n") == ROWS + 1
    # Not just shuffled: the people differ.
    people = {line.split(",", 1)[0] for line in with_bad[0].splitlines()}
    assert len(people & {line.split(",", 1)[0] for line in other.splitlines()}) < ROWS // 10


def test_writes_in_chunks_not_all_at_once() -> None:
    class Recorder(io.StringIO):
        sizes: list[int]

        def write(self, s: str) -> int:
            self.sizes.append(len(s))
            return super().write(s)

    out = Recorder()
    out.sizes = []
    write_demo_csv(out, residents=10_000, seed=1, reference=REFERENCE)
    assert len(out.sizes) > 3
    assert max(out.sizes) < len(out.getvalue()) / 2


def test_empty_file_has_only_the_header() -> None:
    text, summary = generate(residents=0)
    assert text == ",".join(RESIDENT_COLUMNS) + "\n"
    assert summary == DemoSummary(rows=0, good_rows=0, bad_rows=0, bad_by_kind={})


@pytest.mark.parametrize("bad_rows", [-0.1, 1.5])
def test_bad_rows_is_a_share(bad_rows: float) -> None:
    with pytest.raises(ValueError, match="share"):
        generate(residents=10, bad_rows=bad_rows)


# -- personnummer


def test_every_good_personnummer_is_valid_and_unique(good: list[Checked]) -> None:
    numbers = []
    for c in good:
        assert c.identity is not None
        full = c.identity.personnummer
        assert luhn.is_valid(full[2:]), c.row[0]
        assert full[8:11] != "000"
        assert c.identity.birth_date <= REFERENCE
        numbers.append(full)
    assert len(numbers) == len(set(numbers))


def test_personnummer_forms(good: list[Checked]) -> None:
    forms: Counter[str] = Counter()
    for c in good:
        pnr = c.row[0]
        assert c.identity is not None
        if re.fullmatch(r"[0-9]{8}-[0-9]{4}", pnr):
            forms["long"] += 1
        elif re.fullmatch(r"[0-9]{12}", pnr):
            forms["compact"] += 1
        elif re.fullmatch(r"[0-9]{6}-[0-9]{4}", pnr):
            forms["short"] += 1
        elif re.fullmatch(r"[0-9]{6}\+[0-9]{4}", pnr):
            forms["short+"] += 1
            assert REFERENCE.year - c.identity.birth_date.year >= 100
        else:
            pytest.fail(f"unexpected form {pnr!r}")
    n = len(good)
    assert 0.87 < forms["long"] / n < 0.93
    assert 0.03 < forms["compact"] / n < 0.07
    assert 0.03 < (forms["short"] + forms["short+"]) / n < 0.07
    coordination = sum(1 for c in good if c.identity and c.identity.coordination_number)
    assert 0.001 < coordination / n < 0.006


def test_short_form_uses_plus_from_100() -> None:
    tail = "1234"
    assert format_personnummer("19250601", tail, "short", reference=REFERENCE) == "250601+1234"
    assert format_personnummer("19260301", tail, "short", reference=REFERENCE) == "260301+1234"
    assert format_personnummer("19260302", tail, "short", reference=REFERENCE) == "260302-1234"
    assert format_personnummer("19870301", tail, "compact", reference=REFERENCE) == "198703011234"
    assert format_personnummer("19870301", tail, "long", reference=REFERENCE) == "19870301-1234"
    # The parser reads them back to the right century.
    for ymd in ("19250601", "19260301", "19260302", "20000101"):
        check = demo._check_digit(ymd, 123)
        short = format_personnummer(ymd, f"123{check}", "short", reference=REFERENCE)
        assert personnummer.parse(short, reference=REFERENCE).personnummer == f"{ymd}123{check}"


def test_own_luhn_agrees_with_stdnum() -> None:
    tails = demo._tail_table()
    for ymd in ("19830512", "20000229", "19251231", "20260301", "19640171"):
        for serial in (1, 2, 99, 500, 998, 999):
            check = demo._check_digit(ymd, serial)
            digits = f"{ymd[2:]}{serial:03d}"
            assert str(check) == luhn.calc_check_digit(digits)
            assert luhn.is_valid(f"{digits}{check}")
            sex, j = (serial + 1) % 2, (serial - 1) // 2
            assert tails[sex][j][demo._date_sum(ymd) % 10] == f"{serial:03d}{check}"


def test_sex_follows_the_serial(good: list[Checked]) -> None:
    for c in good[:2000]:
        assert c.identity is not None
        assert c.identity.sex == ("M" if int(c.identity.personnummer[10]) % 2 else "F")


def test_used_up_birth_dates_move_to_other_dates(units: list[DemoCareUnit]) -> None:
    writer = demo._ResidentsWriter(random.Random(3), REFERENCE, [u.hsa_id for u in units], {})
    # Every date in even years before the reference has no serial left.
    for key in range(len(writer.taken)):
        if (key >> 1) // 365 % 2 == 0:
            writer.taken[key] = 500
    lines = writer.lines(3000, plain=False)
    rows = list(csv.reader(lines))
    numbers = [personnummer.parse(r[0], reference=REFERENCE).personnummer for r in rows]
    assert len(set(numbers)) == len(numbers) == 3000
    for number in numbers:
        days = (REFERENCE - personnummer.parse(number, reference=REFERENCE).birth_date).days
        assert days // 365 % 2 == 1


# -- who the residents are


def age(c: Checked) -> int:
    assert c.identity is not None
    born = c.identity.birth_date
    return REFERENCE.year - born.year - ((REFERENCE.month, REFERENCE.day) < (born.month, born.day))


def test_population_pyramid_and_sex(good: list[Checked]) -> None:
    n = len(good)
    ages = Counter(age(c) for c in good)
    assert min(ages) >= 0
    assert max(ages) <= 100
    assert 0.13 < sum(v for a, v in ages.items() if a >= 70) / n < 0.20
    assert sum(v for a, v in ages.items() if a > 95) / n < 0.005
    assert sum(v for a, v in ages.items() if 0 <= a < 10) / n > 0.08
    women = sum(1 for c in good if c.identity and c.identity.sex == "F")
    assert 0.47 < women / n < 0.53
    old = [c for c in good if age(c) >= 80]
    assert sum(1 for c in old if c.identity and c.identity.sex == "F") / len(old) > 0.55


@pytest.mark.parametrize("target_age", [40, 50, 60, 70])
def test_target_cohorts_are_populated(good: list[Checked], target_age: int) -> None:
    born = REFERENCE.year - target_age
    cohort = sum(1 for c in good if c.identity and c.identity.birth_date.year == born)
    assert 0.010 < cohort / len(good) < 0.015


# -- listing, places and contact


def test_listing_is_uneven_and_mostly_local(good: list[Checked], units: list[DemoCareUnit]) -> None:
    n = len(good)
    unit_of = {u.hsa_id: u for u in units}
    per_unit = Counter(c.row[1] for c in good)
    assert 0.02 < per_unit.pop("") / n < 0.04
    assert set(per_unit) == set(unit_of)
    assert max(per_unit.values()) > 2 * min(per_unit.values())
    listed = [c for c in good if c.row[1]]
    local = sum(1 for c in listed if unit_of[c.row[1]].municipality == c.row[2])
    assert local / len(listed) > 0.85


def test_places(good: list[Checked]) -> None:
    desos: dict[str, set[str]] = {}
    for c in good:
        _, _, municipality, deso, protected, address, postal, city = c.row[:8]
        assert municipality in HALLAND
        if protected == "true":
            assert (deso, address, postal, city) == ("", "", "", "")
            continue
        assert DESO.match(deso)
        assert deso[:4] == municipality
        assert re.fullmatch(r"[A-ZÅÄÖ][a-zåäöé]+( [a-zA-Zåäö]+)? [0-9]+[AB]?( lgh 1[0-9]{3})?", address)
        assert POSTAL.match(postal)
        assert city
        desos.setdefault(municipality, set()).add(deso)
    assert set(desos) == HALLAND
    assert all(len(areas) >= 5 for areas in desos.values())
    assert len(desos["1380"]) >= 24  # a few dozen in Halmstad


def test_protected_identities(good: list[Checked]) -> None:
    protected = [c for c in good if c.row[4] == "true"]
    assert 0.001 < len(protected) / len(good) < 0.006
    assert all(c.row[5:8] == ["", "", ""] for c in protected)


def test_contact_and_language(good: list[Checked]) -> None:
    n = len(good)
    phones = [c.row[8] for c in good if c.row[8]]
    assert all(PHONE.match(p) for p in phones)
    assert 0.77 < len(phones) / n < 0.83
    assert len(set(phones)) > 0.95 * len(phones)
    assert 0.42 < sum(1 for c in good if c.row[9] == "true") / n < 0.48
    languages = Counter(c.row[10] for c in good)
    assert 0.91 < languages["sv"] / n < 0.95
    assert 0.03 < languages["en"] / n < 0.05
    assert set(languages) == {"sv", "en", "ar", "fi", "so", "pl"}


def test_deceased_and_emigrated(good: list[Checked]) -> None:
    n = len(good)
    deceased = [c for c in good if c.row[11]]
    emigrated = [c for c in good if c.row[12]]
    assert 0.001 < len(deceased) / n < 0.004
    assert 0.0015 < len(emigrated) / n < 0.0045
    for c in deceased:
        assert c.identity is not None
        when = dt.date.fromisoformat(c.row[11])
        assert when.year == REFERENCE.year
        assert c.identity.birth_date <= when < REFERENCE
        assert not c.row[12]
    for c in emigrated:
        assert c.identity is not None
        assert c.identity.birth_date <= dt.date.fromisoformat(c.row[12]) < REFERENCE
    assert sum(1 for c in deceased if age(c) >= 70) > len(deceased) / 2


def test_own_care_units() -> None:
    ids = ["SE2321000115-E000000000001", "SE5560000000-Etest"]
    text, _ = generate(residents=2000, care_units=ids)
    assert {r[1] for r in data_rows(text)} == {"", *ids}
    # Units of another demo set: residents live where their unit is.
    other_units = demo_care_units(20, seed=4)
    text, _ = generate(residents=2000, care_units=other_units)
    where = {u.hsa_id: u.municipality for u in other_units}
    listed = [r for r in data_rows(text) if r[1]]
    assert {r[1] for r in listed} == set(where)
    assert sum(1 for r in listed if where[r[1]] == r[2]) > 0.85 * len(listed)
    text, _ = generate(residents=200, care_units=[])
    assert {r[1] for r in data_rows(text)} == {""}
    with pytest.raises(ValueError, match="HSA-id"):
        generate(residents=10, care_units=["E000000000001"])


# -- bad rows


def test_bad_rows_as_asked(with_bad: tuple[str, DemoSummary], checked: list[Checked]) -> None:
    _, summary = with_bad
    assert set(BAD_ROW_KINDS) == KINDS
    assert summary.rows == len(checked) == ROWS
    assert summary.bad_rows == round(ROWS * 0.01)
    assert summary.good_rows + summary.bad_rows == ROWS
    bad = [c for c in checked if c.defects]
    assert len(bad) == summary.bad_rows
    for c in bad:
        assert len(c.defects) == 1, (c.row, c.defects)
    found = Counter(next(iter(c.defects)) for c in bad)
    assert dict(found) == summary.bad_by_kind
    assert set(found) == KINDS
    assert min(found.values()) >= summary.bad_rows // len(KINDS) - 1


def test_bad_rows_are_spread_through_the_file(checked: list[Checked]) -> None:
    positions = [i for i, c in enumerate(checked) if c.defects]
    assert positions[0] < ROWS // 10
    assert positions[-1] > ROWS * 9 // 10
    quarters = Counter(i * 4 // ROWS for i in positions)
    assert all(30 < quarters[q] < 70 for q in range(4))


def test_duplicates_copy_an_earlier_good_row(checked: list[Checked]) -> None:
    earlier: set[str] = set()
    for c in checked:
        if c.defects == {"duplicate_personnummer"}:
            assert c.identity is not None
            assert c.identity.personnummer in earlier
        elif not c.defects and c.identity is not None:
            earlier.add(c.identity.personnummer)


def test_bad_personnummer_look_real(checked: list[Checked]) -> None:
    for c in checked:
        kind = next(iter(c.defects), None)
        pnr = c.row[0]
        if kind in ("wrong_check_digit", "impossible_date", "serial_000"):
            assert re.fullmatch(r"[0-9]{8}-[0-9]{4}", pnr)
            assert luhn.is_valid(pnr[2:8] + pnr[9:]) == (kind != "wrong_check_digit")
        if kind == "serial_000":
            assert pnr[9:12] == "000"
        if kind == "letters_in_personnummer":
            assert len(pnr) == 13
            assert sum(ch.isalpha() for ch in pnr) == 1


def test_every_row_is_bad_when_asked() -> None:
    text, summary = generate(residents=300, bad_rows=1.0)
    rows = data_rows(text)
    assert summary.good_rows == 0
    assert summary.bad_rows == 300
    # No good row to copy, so no duplicates; every other kind still exactly one defect.
    checked = list(check_rows(rows, {u.hsa_id for u in demo_care_units()}))
    assert all(len(c.defects) == 1 for c in checked)
    assert "duplicate_personnummer" not in summary.bad_by_kind


# -- care units


def test_demo_care_units(units: list[DemoCareUnit]) -> None:
    assert len(units) == 10
    assert units == demo_care_units()
    assert demo_care_units(seed=1) != units
    assert len({u.hsa_id for u in units}) == len({u.name for u in units}) == 10
    assert all(HSA.match(u.hsa_id) for u in units)
    assert {u.municipality for u in units} == HALLAND
    assert {u.operator for u in units} == {"public", "private"}
    assert sum(u.participating for u in units) == 8
    assert all(10 <= u.weekly_capacity <= 40 for u in units)
    assert any(u.name == "Vårdcentralen Andersberg" for u in units)
    many = demo_care_units(40, seed=5)
    assert len({u.hsa_id for u in many}) == len({u.name for u in many}) == 40
    assert sum(u.participating for u in many) == 32


def test_care_units_csv_round_trip(units: list[DemoCareUnit]) -> None:
    out = io.StringIO()
    assert write_care_units_csv(out, units) == len(units)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == [
        "hsa_id", "name", "municipality", "operator", "participating", "weekly_capacity",
        "visiting_address", "phone",
    ]  # fmt: skip
    back = [
        DemoCareUnit(
            hsa_id=r["hsa_id"],
            name=r["name"],
            municipality=r["municipality"],
            operator=r["operator"],  # type: ignore[arg-type]
            participating={"true": True, "false": False}[r["participating"]],
            weekly_capacity=int(r["weekly_capacity"]),
        )
        for r in rows
    ]
    assert back == units
    assert [(r["visiting_address"], r["phone"]) for r in rows] == [
        (u.visiting_address, u.phone) for u in units
    ]
    assert len({r["phone"] for r in rows}) == len(rows)  # every unit its own number
