"""Who is in a programme year's cohort: residents turning a target age during the year who are
alive and living in the region on the day asked about (today by default).

The cohort includes residents who are not listed or are listed at a non-participating unit: they
are not invited but they are counted (issue: equality of reach)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, and_, column, func, or_, select, values
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Values

from halsosamtal.cohort.schemas import CohortCount, CohortCounts, CohortMember
from halsosamtal.core import clock
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import Page, decode_id_cursor, encode_id_cursor
from halsosamtal.programmes.service import get_year
from halsosamtal.residents.models import Resident
from halsosamtal.residents.personnummer import format_long
from halsosamtal.units.models import CareUnit

SEX = {"F": "female", "M": "male"}


def living_in_region(as_of: dt.date) -> ColumnElement[bool]:
    """Alive, not emigrated and not moved out on ``as_of``."""
    return and_(
        or_(Resident.deceased_on.is_(None), Resident.deceased_on > as_of),
        or_(Resident.emigrated_on.is_(None), Resident.emigrated_on > as_of),
        or_(Resident.moved_out_on.is_(None), Resident.moved_out_on > as_of),
    )


def turning(year: int, ages: list[int]) -> tuple[Values, ColumnElement[bool]]:
    """A VALUES list of the ages, and the join condition 'born in year - age' (an index range
    scan on birth_date for each age)."""
    target = values(column("age", Integer), name="target_ages").data([(a,) for a in ages])
    condition = and_(
        Resident.birth_date >= func.make_date(year - target.c.age, 1, 1),
        Resident.birth_date < func.make_date(year - target.c.age + 1, 1, 1),
    )
    return target, condition


async def counts(session: AsyncSession, year: int, *, as_of: dt.date | None = None) -> CohortCounts:
    programme = await get_year(session, year)
    as_of = as_of or clock.local_today()
    target, born = turning(year, list(programme.target_ages))
    query = (
        select(target.c.age, CareUnit.hsa_id, CareUnit.participating, Resident.sex, func.count())
        .select_from(target)
        .join(Resident, born)
        .outerjoin(CareUnit, CareUnit.id == Resident.care_unit_id)
        .where(living_in_region(as_of))
        .group_by(target.c.age, CareUnit.hsa_id, CareUnit.participating, Resident.sex)
        .order_by(target.c.age, CareUnit.hsa_id.nulls_last(), Resident.sex)
    )
    rows = [
        CohortCount(age=age, care_unit=hsa, participating=part, sex=SEX[sex], residents=n)
        for age, hsa, part, sex, n in await session.execute(query)
    ]
    return CohortCounts(
        year=year,
        as_of=as_of,
        total=sum(r.residents for r in rows),
        eligible=sum(r.residents for r in rows if r.participating),
        not_listed=sum(r.residents for r in rows if r.care_unit is None),
        at_non_participating_unit=sum(r.residents for r in rows if r.participating is False),
        counts=rows,
    )


async def members(
    session: AsyncSession,
    year: int,
    *,
    care_unit: str | None = None,
    age: int | None = None,
    as_of: dt.date | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[CohortMember]:
    """The cohort's members in a stable order (by resident), a page at a time (keyset)."""
    programme = await get_year(session, year)
    ages = list(programme.target_ages)
    if age is not None:
        if age not in ages:
            raise InvalidInput(
                f"{age} is not a target age of {year} ({', '.join(map(str, ages))})", field="age"
            )
        ages = [age]
    as_of = as_of or clock.local_today()
    target, born = turning(year, ages)
    query: Select[Any] = (
        select(Resident, target.c.age, CareUnit.hsa_id)
        .select_from(target)
        .join(Resident, born)
        .outerjoin(CareUnit, CareUnit.id == Resident.care_unit_id)
        .where(living_in_region(as_of))
        .order_by(Resident.id)
        .limit(limit + 1)
    )
    if care_unit is not None:
        query = query.where(CareUnit.hsa_id == care_unit)
    if (after := decode_id_cursor(cursor)) is not None:
        query = query.where(Resident.id > after)
    rows = (await session.execute(query)).all()
    items = [
        CohortMember(
            personnummer=format_long(r.personnummer),
            birth_date=r.birth_date,
            age=a,
            sex=SEX[r.sex],
            care_unit=hsa,
            # Nothing that locates a resident with protected identity, in any listing.
            municipality=None if r.protected_identity else r.municipality,
            deso=None if r.protected_identity else r.deso,
            protected_identity=r.protected_identity,
        )
        for r, a, hsa in rows[:limit]
    ]
    next_cursor = encode_id_cursor(rows[limit - 1][0].id) if len(rows) > limit else None
    return Page[CohortMember](items=items, next_cursor=next_cursor)
