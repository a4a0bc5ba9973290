"""Swedish personal identity numbers (personnummer) and coordination numbers (samordningsnummer).

Built on python-stdnum (``stdnum.se.personnummer`` for the form and ``stdnum.luhn`` for the check
digit), with the two gaps DOMAIN.md names closed here:

* stdnum 2.2 rejects samordningsnummer (day + 60); we accept them and flag them;
* stdnum accepts serial 000, which is never assigned; we reject it.

The 10-digit form's century is taken relative to a reference date (the register extract's date),
not today: '-' means under 100 at that date, '+' means 100 or older.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.se import personnummer as stdnum_pnr
from stdnum.util import isdigits

from halsosamtal.core import clock


class InvalidPersonnummer(ValueError):
    """The value is not a valid personnummer or samordningsnummer; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Identity:
    personnummer: str
    """Normalised: 12 digits, YYYYMMDDNNNC (a samordningsnummer keeps its day + 60)."""
    birth_date: dt.date
    sex: Literal["F", "M"]
    coordination_number: bool


def parse(value: str, *, reference: dt.date | None = None) -> Identity:
    """Validate ``value`` (10 or 12 digits, with or without '-' or '+') and return its identity."""
    reference = reference or clock.local_today()
    number = stdnum_pnr.compact(value)  # YYMMDD-NNNC / YYYYMMDD-NNNC, separator kept
    if len(number) not in (11, 13):
        raise InvalidPersonnummer("must have 10 or 12 digits")
    sep = number[-5]
    digits = number[:-5] + number[-4:]
    # stdnum's isdigits accepts only 0-9 (str.isdigit also takes e.g. Arabic-Indic digits and ²).
    if sep not in "-+" or not isdigits(digits):
        raise InvalidPersonnummer("only digits and one '-' or '+' before the last four are allowed")
    if sep == "+" and len(number) == 13:
        # In the 12-digit form the century is written out; '+' carries no information there.
        sep = "-"
    if not luhn.is_valid(digits[-10:]):
        raise InvalidPersonnummer("the check digit is wrong")
    if digits[-4:-1] == "000":
        raise InvalidPersonnummer("serial number 000 is never assigned")
    month, day = int(digits[-8:-6]), int(digits[-6:-4])
    coordination = day > 60
    if coordination:
        day -= 60
    if len(digits) == 12:
        year = int(digits[:4])
    else:
        year = _century_year(int(digits[:2]), month, day, reference, plus=sep == "+")
    try:
        birth = dt.date(year, month, day)
    except ValueError as exc:
        raise InvalidPersonnummer("the date part is not a real date") from exc
    if birth > reference:
        raise InvalidPersonnummer("the birth date is in the future")
    full = f"{year:04d}{digits[-8:]}"
    return Identity(
        personnummer=full,
        birth_date=birth,
        sex="M" if int(full[-2]) % 2 else "F",
        coordination_number=coordination,
    )


def _century_year(yy: int, month: int, day: int, reference: dt.date, *, plus: bool) -> int:
    """The year for a 10-digit number: the latest at which the person is under 100 at
    ``reference`` ('-'), or 100 years before that ('+')."""
    year = (reference.year // 100) * 100 + yy
    if (year, month, day) > (reference.year, reference.month, reference.day):
        year -= 100
    if plus:
        year -= 100
    return year


def is_valid(value: str, *, reference: dt.date | None = None) -> bool:
    try:
        parse(value, reference=reference)
    except InvalidPersonnummer:
        return False
    return True


def format_long(personnummer: str) -> str:
    """``YYYYMMDD-NNNC`` from the normalised 12 digits."""
    return f"{personnummer[:8]}-{personnummer[8:]}"


def mask(personnummer: str) -> str:
    """For logs and messages where the person must not be identifiable: ``YYYYMMDD-****``."""
    return f"{personnummer[:8]}-****"


def stdnum_agrees(value: str) -> bool:
    """Whether python-stdnum itself accepts the value (used by the tests as the reference)."""
    try:
        stdnum_pnr.validate(value)
    except ValidationError:
        return False
    return True
