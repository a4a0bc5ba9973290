"""Factories for test data that goes straight into the tables (small numbers of rows)."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from stdnum import luhn

from halsosamtal.residents.models import Resident
from halsosamtal.residents.personnummer import parse

_serials = itertools.count(1)


def personnummer(birth: dt.date, *, sex: str = "F", coordination: bool = False) -> str:
    """A valid 12-digit personnummer for ``birth`` (unique per call within a test run)."""
    n = next(_serials) % 99 + 1
    serial = n * 10 + (1 if sex == "M" else 2)  # third digit: odd for men, even for women
    day = birth.day + (60 if coordination else 0)
    body = f"{birth:%y%m}{day:02d}{serial:03d}"
    return f"{birth.year:04d}{birth:%m}{day:02d}{serial:03d}{luhn.calc_check_digit(body)}"


async def make_resident(
    sessionmaker: async_sessionmaker[AsyncSession],
    birth: dt.date,
    *,
    sex: str = "F",
    care_unit_id: int | None = None,
    **fields: Any,
) -> Resident:
    pnr = personnummer(birth, sex=sex)
    identity = parse(pnr)
    async with sessionmaker() as s, s.begin():
        resident = Resident(
            personnummer=identity.personnummer,
            birth_date=identity.birth_date,
            sex=identity.sex,
            coordination_number=identity.coordination_number,
            care_unit_id=care_unit_id,
            **fields,
        )
        s.add(resident)
    return resident
