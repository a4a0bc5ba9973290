"""Deterministic demo data: care units and a residents register extract for Region Halland.

Everything here is made up but shaped like the real thing, so the import, the cohort selection
and the reports can be tried on a realistic volume without any personal data:

* ``demo_care_units()`` gives primary-care centres with HSA-ids, in the six Halland
  municipalities, public and private, most of them taking part;
* ``write_demo_csv()`` streams a residents CSV (the layout the register import reads) with a
  Swedish population pyramid, valid and unique personnummer, listing, DeSO areas, addresses,
  protected identities, deaths and emigrations, and, on request, a share of realistic bad rows
  (each with exactly one defect, see ``BAD_ROW_KINDS``).

The same arguments always give byte-identical output: all randomness comes from one
``random.Random(seed)`` (the geography from a fixed seed of its own), never from the clock.
Rows are written in chunks and nothing grows with the number of rows except small counters
bounded by the number of birth dates, so a million rows keep memory flat.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
import random
import re
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import islice, repeat
from operator import add, getitem
from typing import Literal, TextIO, TypeVar

from halsosamtal.residents.columns import RESIDENT_COLUMNS
from halsosamtal.units.columns import CARE_UNIT_COLUMNS, CONTACT_COLUMNS

_T = TypeVar("_T")

HSA_ID_RE = re.compile(r"^SE[0-9]{10}-[A-Za-z0-9]{1,20}$")
"""Same rule as ``halsosamtal.units.models.HSA_ID_PATTERN`` (kept here to stay free of the ORM)."""

BAD_ROW_KINDS = (
    "wrong_check_digit",
    "impossible_date",
    "serial_000",
    "unknown_care_unit",
    "malformed_hsa_id",
    "bad_deceased_date",
    "duplicate_personnummer",
    "too_few_columns",
    "bad_municipality",
    "malformed_deso",
    "bad_boolean",
    "empty_personnummer",
    "letters_in_personnummer",
)
"""What a bad row can be wrong with; every bad row has exactly one of these defects."""

REGION_HALLAND_ORG = "2321000115"
"""Region Halland's organisation number, the first part of its HSA-ids."""

# Municipality code -> (name, approximate population); the population weights the demo data.
MUNICIPALITIES: dict[str, tuple[str, int]] = {
    "1315": ("Hylte", 11_000),
    "1380": ("Halmstad", 104_000),
    "1381": ("Laholm", 26_000),
    "1382": ("Falkenberg", 47_000),
    "1383": ("Varberg", 67_000),
    "1384": ("Kungsbacka", 86_000),
}

# Localities per municipality: (name, share of the municipality's people, postal prefix,
# first and last two-digit postal suffix). Approximate: demo data, not a postal register.
_LOCALITIES: dict[str, tuple[tuple[str, int, str, int, int], ...]] = {
    "1315": (
        ("Hyltebruk", 55, "314", 30, 34),
        ("Torup", 20, "314", 41, 42),
        ("Unnaryd", 10, "314", 51, 52),
        ("Landeryd", 15, "314", 60, 61),
    ),
    "1380": (
        ("Halmstad", 75, "302", 20, 74),
        ("Oskarström", 8, "313", 30, 33),
        ("Getinge", 5, "305", 70, 72),
        ("Harplinge", 5, "305", 60, 61),
        ("Gullbrandstorp", 7, "305", 65, 66),
    ),
    "1381": (
        ("Laholm", 45, "312", 30, 34),
        ("Mellbystrand", 20, "312", 60, 61),
        ("Skummeslövsstrand", 10, "312", 72, 73),
        ("Knäred", 10, "312", 50, 52),
        ("Veinge", 15, "312", 55, 56),
    ),
    "1382": (
        ("Falkenberg", 65, "311", 30, 45),
        ("Vessigebro", 10, "311", 64, 65),
        ("Ullared", 10, "311", 60, 61),
        ("Glommen", 15, "311", 70, 71),
    ),
    "1383": (
        ("Varberg", 70, "432", 30, 50),
        ("Veddige", 10, "432", 68, 69),
        ("Tvååker", 10, "432", 75, 77),
        ("Träslövsläge", 10, "432", 45, 46),
    ),
    "1384": (
        ("Kungsbacka", 55, "434", 30, 47),
        ("Onsala", 20, "439", 30, 37),
        ("Åsa", 10, "439", 54, 55),
        ("Frillesås", 7, "439", 61, 63),
        ("Särö", 8, "429", 42, 44),
    ),
}

_STREETS = (
    "Storgatan",
    "Kyrkogatan",
    "Skolgatan",
    "Drottninggatan",
    "Köpmansgatan",
    "Nygatan",
    "Järnvägsgatan",
    "Stationsgatan",
    "Hamngatan",
    "Strandvägen",
    "Parkgatan",
    "Torggatan",
    "Ringvägen",
    "Södra vägen",
    "Norra vägen",
    "Östra vägen",
    "Västra vägen",
    "Industrigatan",
    "Björkvägen",
    "Tallvägen",
    "Granvägen",
    "Ekvägen",
    "Lindvägen",
    "Lönnvägen",
    "Almvägen",
    "Aspvägen",
    "Rönnvägen",
    "Hasselvägen",
    "Lärkvägen",
    "Trastvägen",
    "Duvvägen",
    "Svanvägen",
    "Måsvägen",
    "Tärnvägen",
    "Ängsvägen",
    "Åkervägen",
    "Hagvägen",
    "Bäckvägen",
    "Skogsvägen",
    "Sjövägen",
    "Havsvägen",
    "Dynvägen",
    "Fyrvägen",
    "Båtsmansgatan",
    "Fiskaregatan",
    "Bryggaregatan",
    "Smedjegatan",
    "Klockaregatan",
    "Prästgårdsvägen",
    "Bygatan",
    "Mejerigatan",
    "Kvarngatan",
    "Sockerbruksgatan",
    "Tegelbruksvägen",
    "Idrottsvägen",
    "Solvägen",
    "Vallgatan",
    "Slottsgatan",
    "Engelbrektsgatan",
    "Linnégatan",
)

_LANGUAGES = (("sv", 93.0), ("en", 4.0), ("ar", 1.2), ("fi", 0.8), ("so", 0.5), ("pl", 0.5))

# Shares of the whole file, per row.
_UNLISTED = 0.03
_LIVES_WHERE_UNIT_IS = 0.90
_PROTECTED = 0.003
_PHONE = 0.80
_DIGITAL_MAILBOX = 0.45
_COORDINATION = 0.003
_EMIGRATED = 0.003
_DECEASED_70_PLUS = 0.011  # together about 0.2 % of all residents
_DECEASED_UNDER_70 = 0.0004
_RARE = _PROTECTED + _COORDINATION + _EMIGRATED + _DECEASED_70_PLUS
_RARE_UNDER_70 = _PROTECTED + _COORDINATION + _EMIGRATED + _DECEASED_UNDER_70
_LONG_WITH_SEPARATOR = 0.90  # YYYYMMDD-NNNC; the rest is split between the two forms below
_SHORT_FORM = 0.95  # YYMMDD-NNNC (YYMMDD+NNNC at 100+); above this: YYYYMMDDNNNC
_MAX_AGE = 100

_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)
# Luhn weights in the 10-digit form YYMMDDNNNC: positions 1, 3, 5, 7, 9 are doubled.
_SERIAL_SUM = tuple(_LUHN_DOUBLE[i // 100] + (i // 10) % 10 + _LUHN_DOUBLE[i % 10] for i in range(1000))
_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class DemoCareUnit:
    hsa_id: str
    name: str
    municipality: str
    operator: Literal["public", "private"]
    participating: bool
    weekly_capacity: int

    @property
    def visiting_address(self) -> str:
        """A plausible street address in the unit's main locality (from its HSA-id: the same
        unit always has the same, and the seed's random sequence is left as it was)."""
        key = zlib.crc32(self.hsa_id.encode())
        locality, _, prefix, first, last = _LOCALITIES[self.municipality][0]
        street = _UNIT_STREETS[key % len(_UNIT_STREETS)]
        return f"{street} {key % 40 + 1}, {prefix} {first + key % (last - first + 1):02d} {locality}"

    @property
    def phone(self) -> str:
        """The unit's switchboard: the municipality's area code and seven digits."""
        key = zlib.crc32(self.hsa_id.encode()[::-1])
        digits = f"{key % 9_000_000 + 1_000_000}"  # a switchboard's 7 digits, 'NNN NN NN'
        return f"{_AREA_CODES[self.municipality]}-{digits[:3]} {digits[3:5]} {digits[5:]}"


# For the demo units' visiting addresses and phones.
_UNIT_STREETS = ("Storgatan", "Vårdvägen", "Brunnsgatan", "Stationsgatan", "Kyrkogatan", "Hälsovägen")
_AREA_CODES = {"1315": "0345", "1380": "035", "1381": "0430", "1382": "0346", "1383": "0340", "1384": "0300"}


@dataclass(frozen=True, slots=True)
class DemoSummary:
    rows: int
    """Data rows written (the header not counted)."""
    good_rows: int
    bad_rows: int
    bad_by_kind: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- care units

_PUBLIC_CENTRES: dict[str, tuple[str, ...]] = {
    "1315": ("Vårdcentralen Hyltebruk", "Vårdcentralen Unnaryd"),
    "1380": (
        "Vårdcentralen Andersberg",
        "Vårdcentralen Fyllinge",
        "Vårdcentralen Söndrum",
        "Vårdcentralen Oskarström",
        "Vårdcentralen Getinge",
        "Vårdcentralen Brottet",
    ),
    "1381": ("Vårdcentralen Laholm", "Vårdcentralen Knäred"),
    "1382": ("Vårdcentralen Falkenberg", "Vårdcentralen Vessigebro", "Vårdcentralen Ullared"),
    "1383": (
        "Vårdcentralen Håsten",
        "Vårdcentralen Träslövsläge",
        "Vårdcentralen Veddige",
        "Vårdcentralen Tvååker",
    ),
    "1384": (
        "Vårdcentralen Kungsbacka",
        "Vårdcentralen Onsala",
        "Vårdcentralen Åsa",
        "Vårdcentralen Frillesås",
    ),
}
_PRIVATE_CENTRES: dict[str, tuple[str, ...]] = {
    "1315": ("Hälsocentralen Hylte",),
    "1380": ("Capio Vårdcentral Halmstad", "Läkarhuset Halmstad", "Hälsocentralen Nyhem"),
    "1381": ("Läkarhuset Laholm", "Capio Vårdcentral Laholm"),
    "1382": ("Capio Vårdcentral Falkenberg", "Läkarhuset Falkenberg"),
    "1383": ("Capio Vårdcentral Varberg", "Läkarhuset Varberg", "Hälsocentralen Apelviken"),
    "1384": ("Capio Vårdcentral Kungsbacka", "Läkarhuset Kungsbacka", "Hälsocentralen Särö"),
}


def demo_care_units(count: int = 10, seed: int = 0) -> list[DemoCareUnit]:
    """``count`` primary-care centres in Region Halland, the same for the same arguments.

    Spread over the six municipalities by population (each gets one when ``count >= 6``),
    about 40 % private, 80 % participating, weekly capacity 10-40. Public centres carry Region
    Halland's HSA prefix, private ones that of a (made-up) company.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)  # noqa: S311 - demo data: seeded and reproducible on purpose
    slots = [m for m, q in _quotas(count).items() for _ in range(q)]
    rng.shuffle(slots)
    used_names: set[str] = set()
    used_ids: set[str] = set()
    company_orgs: dict[str, str] = {}
    # The best-known names first, whatever the seed.
    pools = {
        (m, op): list(names)
        for m in MUNICIPALITIES
        for op, names in (("public", _PUBLIC_CENTRES[m]), ("private", _PRIVATE_CENTRES[m]))
    }
    participating = set(rng.sample(range(count), round(count * 0.8)))
    units: list[DemoCareUnit] = []
    for i, municipality in enumerate(slots):
        operator: Literal["public", "private"] = "private" if (i + 1) * 2 // 5 > i * 2 // 5 else "public"
        pool = pools[(municipality, operator)]
        name = pool.pop(0) if pool else ""
        base = "Vårdcentralen" if operator == "public" else "Hälsocentralen"
        n = 1
        while not name or name in used_names:
            name = f"{base} {MUNICIPALITIES[municipality][0]}" + (f" {n}" if n > 1 else "")
            n += 1
        used_names.add(name)
        if operator == "public":
            org = REGION_HALLAND_ORG
        else:
            brand = name.split()[0]
            if brand not in company_orgs:
                company_orgs[brand] = _org_number(rng)
            org = company_orgs[brand]
        hsa_id = ""
        while not hsa_id or hsa_id in used_ids:
            hsa_id = f"SE{org}-E{rng.randrange(1_000, 1_000_000):012d}"
        used_ids.add(hsa_id)
        units.append(
            DemoCareUnit(
                hsa_id=hsa_id,
                name=name,
                municipality=municipality,
                operator=operator,
                participating=i in participating,
                weekly_capacity=rng.randint(10, 40),
            )
        )
    units.sort(key=lambda u: (u.municipality, u.name))
    return units


def write_care_units_csv(out: TextIO, units: Iterable[DemoCareUnit]) -> int:
    """Write ``units`` as CSV with a header; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*CARE_UNIT_COLUMNS, *CONTACT_COLUMNS))
    n = 0
    for u in units:
        writer.writerow(
            (
                u.hsa_id,
                u.name,
                u.municipality,
                u.operator,
                "true" if u.participating else "false",
                u.weekly_capacity,
                u.visiting_address,
                u.phone,
            )
        )
        n += 1
    return n


def _quotas(count: int) -> dict[str, int]:
    """Units per municipality by population (largest remainder), at least one each if possible."""
    by_size = sorted(MUNICIPALITIES, key=lambda m: -MUNICIPALITIES[m][1])
    quotas = dict.fromkeys(MUNICIPALITIES, 0)
    floor = 1 if count >= len(MUNICIPALITIES) else 0
    for m in by_size:
        quotas[m] = floor
    rest = count - floor * len(MUNICIPALITIES)
    total = sum(p for _, p in MUNICIPALITIES.values())
    exact = {m: rest * MUNICIPALITIES[m][1] / total for m in by_size}
    for m in by_size:
        quotas[m] += int(exact[m])
    left = count - sum(quotas.values())
    for m in sorted(by_size, key=lambda m: -(exact[m] - int(exact[m])))[:left]:
        quotas[m] += 1
    return quotas


def _org_number(rng: random.Random) -> str:
    """A made-up aktiebolag organisation number (556xxxxxxC) with a valid Luhn digit."""
    body = f"556{rng.randrange(10**6):06d}"
    return body + str(_luhn_check(body))


def _luhn_check(digits: str) -> int:
    """The Luhn check digit to append to ``digits`` (an odd number of digits)."""
    total = 0
    for i, ch in enumerate(digits):
        d = int(ch)
        total += _LUHN_DOUBLE[d] if i % 2 == 0 else d
    return (10 - total % 10) % 10


# --------------------------------------------------------------------------- lookup tables
#
# The hot loop draws from tables of 2**bits entries with ``getrandbits(bits)``, in C (``map``),
# instead of a Python-level ``bisect`` per row: each item fills a share of the table equal to
# its weight (to 1/2**bits).

_ADDRESS_BITS = 13
_AGE_BITS = 14
_DAY_BITS = 12
_LISTING_BITS = 14
_CONTACT_BITS = 14
_FLAT_BITS = 10
_PHONE_BITS = (10, 14)


def _table(items: Sequence[_T], weights: Sequence[float], bits: int) -> tuple[_T, ...]:
    """``2**bits`` entries, each item repeated in proportion to its weight (largest remainder)."""
    size = 1 << bits
    total = sum(weights)
    exact = [w * size / total for w in weights]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(items)), key=lambda i: counts[i] - exact[i])[: size - sum(counts)]:
        counts[i] += 1
    table: list[_T] = []
    for item, count in zip(items, counts, strict=True):
        table.extend(repeat(item, count))
    return tuple(table)


@dataclass(frozen=True, slots=True)
class _Place:
    """Where the people of one municipality live, ready to be written.

    ``addresses``: ``2**_ADDRESS_BITS`` pairs of (``deso,false,street and number``,
    ``,postal code,city``), each DeSO area's addresses in proportion to its population.
    """

    deso_codes: tuple[str, ...]
    addresses: tuple[tuple[str, str], ...]


@cache
def _geography() -> dict[str, _Place]:
    """DeSO areas per municipality (about one per 1,500 people), the same whatever the seed.

    Each area lies in one locality and has a few postal codes and streets. The DeSO category
    letter: C for the main town, B for larger and A for smaller places.
    """
    rng = random.Random(0x4A11A2D)  # noqa: S311 - demo data, fixed on purpose
    geo: dict[str, _Place] = {}
    for code, (_, population) in MUNICIPALITIES.items():
        n_areas = max(8, round(population / 1_500))
        localities = _LOCALITIES[code]
        total_share = sum(loc[1] for loc in localities)
        biggest = max(loc[1] for loc in localities)
        codes: list[str] = []
        addresses: list[tuple[str, str]] = []
        for name, share, prefix, lo, hi in localities:
            letter = "C" if share == biggest else ("B" if share >= 10 else "A")
            suffixes = range(lo, hi + 1)
            for _ in range(max(1, round(n_areas * share / total_share))):
                index = len(codes) + 1
                deso = f"{code}{letter}{(index // 10 + 1) * 1000 + (index % 10) * 10:04d}"
                codes.append(deso)
                postal = [f"{prefix} {s:02d}" for s in rng.sample(suffixes, min(3, len(suffixes)))]
                streets = rng.sample(_STREETS, 8)
                for _ in range(int(rng.uniform(60, 140))):  # the area's size, roughly
                    number = int(rng.random() * rng.random() * 90) + 1
                    house = "AB"[int(rng.random() * 2)] if rng.random() < 0.08 else ""
                    addresses.append(
                        (
                            f"{deso},false,{rng.choice(streets)} {number}{house}",
                            f",{rng.choice(postal)},{name}",
                        )
                    )
        geo[code] = _Place(tuple(codes), _table(addresses, [1.0] * len(addresses), _ADDRESS_BITS))
    return geo


@cache
def _flat_table() -> tuple[str, ...]:
    """About 30 % live in a numbered flat (``lgh 1203``: floor 12, flat 3), the rest not."""
    flats = [f" lgh {floor}{flat:02d}" for floor in range(10, 16) for flat in range(1, 7)]
    return _table(["", *flats], [70.0, *[30.0 / len(flats)] * len(flats)], _FLAT_BITS)


@cache
def _contact_table() -> tuple[tuple[bool, str], ...]:
    """(has a mobile phone, ``digital_mailbox,language``), e.g. ``(True, "true,sv")``."""
    items: list[tuple[bool, str]] = []
    weights: list[float] = []
    for phone, p_phone in ((True, _PHONE), (False, 1 - _PHONE)):
        for mailbox, p_mailbox in (("true", _DIGITAL_MAILBOX), ("false", 1 - _DIGITAL_MAILBOX)):
            for lang, w in _LANGUAGES:
                items.append((phone, f"{mailbox},{lang}"))
                weights.append(p_phone * p_mailbox * w)
    return _table(items, weights, _CONTACT_BITS)


# --------------------------------------------------------------------------- population

_DAYS_PER_YEAR = 365.2425
_MAX_DAYS = int((_MAX_AGE + 1) * _DAYS_PER_YEAR) + 1  # the oldest are just under 101


def _age_profile(age: int) -> tuple[float, float]:
    """Relative number of people of ``age`` (completed years) and the share of women.

    Roughly Sweden: fewer children (recent years had fewer births), flat from 20 to 70 (about
    1.23 % of the population per year of age, so each target cohort is well populated), then
    falling (85: about a third of that, 95: a twentieth, 100: a sixtieth); about half women
    up to 60, then more and more (about 70 % at 95).
    """
    if age < 5:
        weight = 0.85
    elif age < 20:
        weight = 0.92
    elif age <= 70:
        weight = 1.0
    else:
        weight = math.exp(-(((age - 70) / 14.5) ** 2))
    if age < 60:
        female = 0.49
    elif age < 75:
        female = 0.49 + (age - 60) * 0.003
    elif age < 90:
        female = 0.535 + (age - 75) * 0.01
    else:
        female = min(0.8, 0.685 + (age - 90) * 0.015)
    return weight, female


@cache
def _birth_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Two tables whose sum is a key ``2 * days + sex`` (days before the reference date,
    sex 1 for a woman): by ``_age_profile``, the year of age and sex, and the day within it."""
    keys: list[int] = []
    weights: list[float] = []
    for age in range(_MAX_AGE + 1):
        weight, female = _age_profile(age)
        start = 2 * int(age * _DAYS_PER_YEAR)
        keys += [start, start + 1]
        weights += [weight * (1 - female), weight * female]
    size = 1 << _DAY_BITS
    day_in_year = tuple(2 * int(i * _DAYS_PER_YEAR / size) for i in range(size))
    return _table(keys, weights, _AGE_BITS), day_in_year


@cache
def _phone_tables() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``+4670DDD`` and ``DDDD``: together a Swedish mobile number, ``+4670`` and 7 digits."""
    return (
        tuple(f"+4670{i * 1000 >> _PHONE_BITS[0]:03d}" for i in range(1 << _PHONE_BITS[0])),
        tuple(f"{i * 10_000 >> _PHONE_BITS[1]:04d}" for i in range(1 << _PHONE_BITS[1])),
    )


def _date_sum(ymd: str) -> int:
    """Luhn partial sum of YYMMDD (positions 1-6 of the 10-digit form; 1, 3, 5 doubled)."""
    dbl = _LUHN_DOUBLE
    return dbl[int(ymd[2])] + int(ymd[3]) + dbl[int(ymd[4])] + int(ymd[5]) + dbl[int(ymd[6])] + int(ymd[7])


def _check_digit(ymd: str, serial: int) -> int:
    """The check digit for YYYYMMDD ``ymd`` and ``serial`` (Luhn over YYMMDDNNN)."""
    return (10 - (_date_sum(ymd) + _SERIAL_SUM[serial]) % 10) % 10


@cache
def _tail_table() -> tuple[tuple[tuple[str, ...], ...], ...]:
    """``[sex][j][Luhn sum of YYMMDD mod 10]`` -> ``NNNC``, a serial and its check digit.

    Men (sex 0) have the odd serials 001-999 (``2 * j + 1``, 500), women (sex 1) the even
    002-998 (``2 * j + 2``, 499); 000 is never assigned.
    """
    return tuple(
        tuple(
            tuple(f"{s:03d}{(10 - (dsum + _SERIAL_SUM[s]) % 10) % 10}" for dsum in range(10))
            for s in range(1 + sex, 1000, 2)
        )
        for sex in (0, 1)
    )


def _age_on(ymd: str, reference: dt.date) -> int:
    """Completed years at ``reference`` for YYYYMMDD ``ymd`` (a samordningsnummer's day + 60
    taken off first)."""
    year, month, day = int(ymd[:4]), int(ymd[4:6]), int(ymd[6:8])
    if day > 60:
        day -= 60
    return reference.year - year - ((reference.month, reference.day) < (month, day))


def format_personnummer(
    ymd: str, tail: str, form: Literal["long", "compact", "short"], *, reference: dt.date
) -> str:
    """Write YYYYMMDD ``ymd`` and serial + check digit ``tail`` in one of the accepted forms.

    ``long``: YYYYMMDD-NNNC; ``compact``: YYYYMMDDNNNC; ``short``: YYMMDD-NNNC, with '+'
    instead of '-' for someone 100 or older at ``reference``, as the 10-digit form requires.
    """
    if form == "long":
        return f"{ymd}-{tail}"
    if form == "compact":
        return ymd + tail
    return ymd[2:] + ("+" if _age_on(ymd, reference) >= 100 else "-") + tail


# --------------------------------------------------------------------------- residents


def write_demo_csv(
    out: TextIO,
    *,
    residents: int,
    seed: int,
    bad_rows: float = 0.0,
    reference: dt.date,
    care_units: Sequence[str | DemoCareUnit] | None = None,
) -> DemoSummary:
    """Write a residents CSV (header + ``residents`` rows) to ``out`` and say what it holds.

    ``bad_rows`` is the share of rows (rounded to a whole number) replaced by bad rows, at
    random positions, of the kinds in ``BAD_ROW_KINDS`` in about equal numbers.
    ``care_units`` are the units residents are listed at (default: ``demo_care_units()``),
    as HSA-ids or ``DemoCareUnit``; most residents live in their unit's municipality (for a
    bare HSA-id not among the defaults, one drawn by population).
    """
    if residents < 0:
        raise ValueError("residents must not be negative")
    if not 0.0 <= bad_rows <= 1.0:
        raise ValueError("bad_rows is a share between 0 and 1")
    units = demo_care_units() if care_units is None else care_units
    known = {u.hsa_id: u.municipality for u in (*demo_care_units(), *units) if isinstance(u, DemoCareUnit)}
    unit_ids = [u.hsa_id if isinstance(u, DemoCareUnit) else u for u in units]
    for hsa_id in unit_ids:
        if not HSA_ID_RE.match(hsa_id):
            raise ValueError(f"not an HSA-id: {hsa_id!r}")
    rng = random.Random(seed)  # noqa: S311 - demo data: seeded and reproducible on purpose
    writer = _ResidentsWriter(rng, reference, unit_ids, known)
    return writer.write(out, residents, round(residents * bad_rows))


_Listing = tuple[str, tuple[tuple[str, str], ...]]
"""``unit,municipality`` (``,municipality`` when unlisted) and the addresses there."""


class _ResidentsWriter:
    """The state of one ``write_demo_csv`` run; ``write`` holds the hot loop."""

    def __init__(
        self, rng: random.Random, reference: dt.date, unit_ids: list[str], known: dict[str, str]
    ) -> None:
        self.rng = rng
        self.rnd = rng.random
        self.reference = reference
        self.ref_ord = reference.toordinal()
        self.year_start = dt.date(reference.year, 1, 1).toordinal()
        self.unit_set = frozenset(unit_ids)
        geo = _geography()

        # Listing and home municipality in one table. Units get uneven sizes; most people
        # live in their unit's municipality.
        total_population = sum(p for _, p in MUNICIPALITIES.values())
        share = {m: p / total_population for m, (_, p) in MUNICIPALITIES.items()}
        listed: list[_Listing] = []
        weights: list[float] = []
        homes = [
            known.get(hsa_id) or rng.choices(list(share), weights=list(share.values()))[0]
            for hsa_id in unit_ids
        ]
        # A municipality's people shared unevenly between its units.
        sizes = [share[home] / homes.count(home) * rng.lognormvariate(0.0, 0.5) for home in homes]
        for hsa_id, home, size in zip(unit_ids, homes, sizes, strict=True):
            for m in MUNICIPALITIES:
                w = _LIVES_WHERE_UNIT_IS if m == home else 0.0
                w += (1 - _LIVES_WHERE_UNIT_IS) * share[m]
                listed.append((f"{hsa_id},{m}", geo[m].addresses))
                weights.append(w * size / sum(sizes))
        unlisted = [(f",{m}", geo[m].addresses) for m in MUNICIPALITIES]
        p_unlisted = _UNLISTED if unit_ids else 1.0
        self.listing = _table(
            [*listed, *unlisted],
            [*(w * (1 - p_unlisted) for w in weights), *(p * p_unlisted for p in share.values())],
            _LISTING_BITS,
        )
        self.listed = _table(listed, weights, _LISTING_BITS) if listed else ()

        self.births: list[tuple[str, int] | None] = [None] * _MAX_DAYS
        """Per birth date (days before the reference): YYYYMMDD and its Luhn sum mod 10."""
        self.taken = [0] * (2 * _MAX_DAYS)
        """Per birth date and sex (``2 * days + 1`` for a woman): serials handed out so far."""
        self.salt = rng.getrandbits(30)
        """Where each birth date's serials start (not the same people for another seed)."""
        self.dup_pool: list[str] = []
        """Earlier good personnummer (YYYYMMDD-NNNC), a bounded sample to copy for duplicates."""
        self.kinds_queue: list[str] = []

    # -- the hot loop

    def write(self, out: TextIO, residents: int, n_bad: int) -> DemoSummary:
        randoms = iter(self.rnd, 2.0)  # random() without end, called from C
        bad_by_kind = dict.fromkeys(BAD_ROW_KINDS, 0)
        bad_left = n_bad
        out.write(",".join(RESIDENT_COLUMNS) + "\n")
        done = 0
        while done < residents:
            n = min(_CHUNK, residents - done)
            lines = self.lines(n, plain=False)
            bad_at: list[int] = []
            if bad_left:
                # Selection sampling: exactly n_bad bad rows, every position equally likely.
                remaining = residents - done
                for j, u in enumerate(islice(randoms, n)):
                    if u * (remaining - j) < bad_left - len(bad_at):
                        bad_at.append(j)
                bad_left -= len(bad_at)
            if bad_at:
                # The first good row of the chunk in the long form, for a duplicate to copy
                # when there is nothing earlier.
                skip = set(bad_at)
                first = next((j for j in range(n) if j not in skip and lines[j][8] == "-"), n)
                for j, base in zip(bad_at, self.lines(len(bad_at), plain=True), strict=True):
                    earlier = lines[first] if first < j else ""
                    kind = self.next_kind(bool(self.dup_pool or earlier))
                    bad_by_kind[kind] += 1
                    lines[j] = self.corrupt(kind, base, earlier)
            else:
                skip = set()
            # Keep a bounded sample of good rows (long form) to copy for later duplicates.
            for j in range(0, n, 97):
                if j not in skip and lines[j][8] == "-":
                    if len(self.dup_pool) < 1_000:
                        self.dup_pool.append(lines[j][:13])
                    else:
                        self.dup_pool[int(self.rnd() * 1_000)] = lines[j][:13]
            out.write("".join(lines))
            done += n
        return DemoSummary(
            rows=residents,
            good_rows=residents - n_bad,
            bad_rows=n_bad,
            bad_by_kind={k: v for k, v in bad_by_kind.items() if v},
        )

    def lines(self, n: int, *, plain: bool) -> list[str]:
        """``n`` good rows. ``plain``: listed, not protected, not a samordningsnummer, neither
        deceased nor emigrated, in the long form: the bases bad rows are made from."""
        rnd, bits = self.rnd, self.rng.getrandbits
        randoms = iter(rnd, 2.0)
        age_keys, day_keys = _birth_tables()
        phone_head, phone_tail = _phone_tables()
        contact, flats = _contact_table(), _flat_table()
        births, taken, tails = self.births, self.taken, _tail_table()
        long_form, rare_any, salt = _LONG_WITH_SEPARATOR, _RARE, self.salt

        def pick(table: Sequence[_T], table_bits: int) -> Iterator[_T]:
            """``n`` draws from a lookup table, in C."""
            return map(getitem, repeat(table, n), map(bits, repeat(table_bits, n)))

        columns = zip(
            map(add, pick(age_keys, _AGE_BITS), pick(day_keys, _DAY_BITS)),
            pick(self.listed or self.listing if plain else self.listing, _LISTING_BITS),
            pick(contact, _CONTACT_BITS),
            map(bits, repeat(_ADDRESS_BITS, n)),
            pick(flats, _FLAT_BITS),
            pick(phone_head, _PHONE_BITS[0]),
            pick(phone_tail, _PHONE_BITS[1]),
            repeat(1.0, n) if plain else islice(randoms, n),  # rare things
            repeat(0.0, n) if plain else islice(randoms, n),  # the form of the personnummer
            strict=True,
        )
        lines: list[str] = []
        append = lines.append
        for (
            key, (unit_mun, addresses), (has_phone, contact_text), spot, flat,
            phone, phone_digits, rare, form,
        ) in columns:  # fmt: skip
            k = taken[key]
            size = 500 - (key & 1)  # women: even serials 002-998, men: odd 001-999
            if k >= size:  # that birth date's serials are used up: another one
                key, k = self.free_birth()
                size = 500 - (key & 1)
            taken[key] = k + 1
            days = key >> 1
            birth = births[days]
            if birth is None:
                birth = self.birth(days)
            ymd, dsum = birth

            head, rest = addresses[spot]
            ended = ","
            if rare < rare_any:
                ymd, dsum, protected, ended = self.rare(rare, days, ymd, dsum)
                if protected:
                    # No address, and no DeSO either: that would narrow down where they live.
                    head, flat, rest = ",true,,,", "", ""
            tail = tails[key & 1][(k * 263 + days + salt) % size][dsum]
            pnr = f"{ymd}-{tail}" if form < long_form else self.other_form(form, ymd, tail)
            if has_phone:
                phone += phone_digits
            else:
                phone = ""
            append(f"{pnr},{unit_mun},{head}{flat}{rest},{phone},{contact_text},{ended}\n")
        return lines

    # -- the slow paths

    def birth(self, days: int) -> tuple[str, int]:
        day = dt.date.fromordinal(self.ref_ord - days)
        ymd = f"{day.year:04d}{day.month:02d}{day.day:02d}"
        birth = self.births[days] = (ymd, _date_sum(ymd) % 10)
        return birth

    def free_birth(self) -> tuple[int, int]:
        """Another (birth date and sex, serials taken) with a serial left (each birth date
        and sex has about 500: it takes tens of millions of rows to run out)."""
        age_keys, day_keys = _birth_tables()
        for _ in range(10_000):
            bits = self.rng.getrandbits
            key = age_keys[bits(_AGE_BITS)] + day_keys[bits(_DAY_BITS)]
            if self.taken[key] < 500 - (key & 1):
                return key, self.taken[key]
        raise ValueError("too many residents for the serial numbers of the birth dates")

    def rare(self, rare: float, days: int, ymd: str, dsum: int) -> tuple[str, int, bool, str]:
        """At most one rare thing per person: protected identity, samordningsnummer,
        emigration, death (mostly of the old). Returns (YYYYMMDD, its Luhn sum, protected,
        ``deceased_on,emigrated_on``)."""
        if rare < _PROTECTED:
            return ymd, dsum, True, ","
        if rare < _PROTECTED + _COORDINATION:
            ymd = f"{ymd[:6]}{int(ymd[6:]) + 60:02d}"
            return ymd, _date_sum(ymd) % 10, False, ","
        deceased = rare >= _PROTECTED + _COORDINATION + _EMIGRATED
        if deceased and days < 70 * _DAYS_PER_YEAR and rare >= _RARE_UNDER_70:
            return ymd, dsum, False, ","
        first = max(self.year_start if deceased else self.ref_ord - 365, self.ref_ord - days)
        if first >= self.ref_ord:
            return ymd, dsum, False, ","
        when = dt.date.fromordinal(first + int(self.rnd() * (self.ref_ord - first))).isoformat()
        return ymd, dsum, False, f"{when}," if deceased else f",{when}"

    def other_form(self, form: float, ymd: str, tail: str) -> str:
        kind: Literal["short", "compact"] = "short" if form < _SHORT_FORM else "compact"
        return format_personnummer(ymd, tail, kind, reference=self.reference)

    def next_kind(self, have_good: bool) -> str:
        """Kinds in shuffled rounds of all of them; a duplicate waits for a good row to copy."""
        queue = self.kinds_queue
        if not queue:
            queue.extend(self.rng.sample(BAD_ROW_KINDS, len(BAD_ROW_KINDS)))
        if queue[-1] == "duplicate_personnummer" and not have_good:
            # One duplicate per round, so the queue's first is something else.
            if len(queue) == 1:
                others = [k for k in BAD_ROW_KINDS if k != "duplicate_personnummer"]
                queue[:0] = self.rng.sample(others, len(others))
            queue[-1], queue[0] = queue[0], queue[-1]
        return queue.pop()

    def unknown_unit(self) -> str:
        while True:
            hsa_id = f"SE{REGION_HALLAND_ORG}-E{int(self.rnd() * 10**12):012d}"
            if hsa_id not in self.unit_set:
                return hsa_id

    def corrupt(self, kind: str, line: str, earlier: str) -> str:
        """``line``, a plain good row, with the one defect ``kind``; ``earlier``: a good row
        before it, or empty (then ``dup_pool`` has some)."""
        rnd = self.rnd
        fields = line[:-1].split(",")  # no field holds a comma
        canonical = line[:8] + line[9:13]  # a plain row has the long form, YYYYMMDD-NNNC
        ymd, serial = canonical[:8], int(canonical[8:11])
        if kind == "wrong_check_digit":
            wrong = (int(canonical[-1]) + 1 + int(rnd() * 9)) % 10
            fields[0] = f"{ymd}-{canonical[8:11]}{wrong}"
        elif kind == "impossible_date":
            month, day = _IMPOSSIBLE_DAYS[int(rnd() * len(_IMPOSSIBLE_DAYS))]
            year = int(ymd[:4])
            if (month, day) == (2, 29):  # only where that year is not a leap year
                while year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
                    year -= 1
            ymd = f"{year:04d}{month:02d}{day:02d}"
            fields[0] = f"{ymd}-{canonical[8:11]}{_check_digit(ymd, serial)}"
        elif kind == "serial_000":
            fields[0] = f"{ymd}-000{_check_digit(ymd, 0)}"
        elif kind == "letters_in_personnummer":
            text = list(f"{ymd}-{canonical[8:]}")
            pos = int(rnd() * 12)
            pos += pos >= 8  # not the '-'
            text[pos] = _LOOKALIKE.get(text[pos], "X")
            fields[0] = "".join(text)
        elif kind == "empty_personnummer":
            fields[0] = ""
        elif kind == "duplicate_personnummer":
            pool = self.dup_pool
            fields[0] = pool[int(rnd() * len(pool))] if pool else earlier[:13]
        elif kind == "unknown_care_unit":
            fields[1] = self.unknown_unit()
        elif kind == "malformed_hsa_id":
            fields[1] = _malform_hsa_id(fields[1] or self.unknown_unit(), rnd)
        elif kind == "bad_deceased_date":
            month, day = _BAD_DATES[int(rnd() * len(_BAD_DATES))]
            fields[11] = f"{self.reference.year:04d}-{month:02d}-{day:02d}"
        elif kind == "too_few_columns":
            del fields[len(fields) - 1 - int(rnd() * 3) :]
        elif kind == "bad_municipality":
            m = fields[2]
            fields[2] = (m[:3], m + "0", MUNICIPALITIES[m][0], f"{m[:2]} {m[2:]}")[int(rnd() * 4)]
        elif kind == "malformed_deso":
            d = fields[3]
            fields[3] = (f"{d[:4]}X{d[5:]}", d[:-1], d[4:], f"{d[:4]}-{d[4:]}")[int(rnd() * 4)]
        elif kind == "bad_boolean":
            column = 4 if rnd() < 0.5 else 9  # protected_identity or digital_mailbox
            fields[column] = ("kanske", "okänt", "x", "2")[int(rnd() * 4)]
        else:  # pragma: no cover
            raise AssertionError(kind)
        return ",".join(fields) + "\n"


_IMPOSSIBLE_DAYS = ((2, 30), (2, 31), (4, 31), (6, 31), (9, 31), (11, 31), (13, 1), (0, 12), (2, 29))
_BAD_DATES = ((13, 1), (2, 30), (0, 15), (4, 31), (6, 31))
_LOOKALIKE = {"0": "O", "1": "l", "5": "S", "8": "B", "2": "Z"}


def _malform_hsa_id(hsa_id: str, rnd: Callable[[], float]) -> str:
    """One of the ways an HSA-id gets mangled on its way through a spreadsheet."""
    prefix, suffix = hsa_id.split("-", 1)
    variant = int(rnd() * 4)
    if variant == 0:
        return prefix + suffix  # the '-' lost
    if variant == 1:
        return f"{prefix[:-1]}-{suffix}"  # a digit of the organisation number lost
    if variant == 2:
        return f"{prefix}-{suffix[:4]}_{suffix[4:]}"  # a character HSA-ids do not have
    return f"{prefix}-{suffix}{'0' * (21 - len(suffix))}"  # a suffix longer than 20
