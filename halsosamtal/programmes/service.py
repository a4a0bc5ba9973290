"""Programme years: one row of rules per calendar year, with every change kept as a revision."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.core import clock
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.programmes.models import ProgrammeYear, ProgrammeYearRevision
from halsosamtal.programmes.schemas import ProgrammeRevisionOut, ProgrammeRules, ProgrammeYearOut

RULE_FIELDS = tuple(ProgrammeRules.model_fields)


def _check_year(year: int, rules: ProgrammeRules) -> None:
    if not 2000 <= year <= 2100:
        raise InvalidInput("year must be from 2000 to 2100", field="year")
    if rules.valid_until <= dt.date(year, 1, 1):
        raise InvalidInput(f"valid_until must be after the start of {year}", field="valid_until")
    last = latest_valid_until(year)
    if rules.valid_until > last:
        # A year's invitations go out during the year and are used within months; a far day
        # (9999-12-31 was accepted) is a typo, and it overflowed every slot search of the year.
        raise InvalidInput(
            f"valid_until must be no later than {last.isoformat()} (the end of the following year)",
            field="valid_until",
        )


def latest_valid_until(year: int) -> dt.date:
    """The last day a programme year's invitations may be valid until: the end of the next year."""
    return dt.date(year + 1, 12, 31)


async def set_year(
    session: AsyncSession, year: int, rules: ProgrammeRules, *, actor: str
) -> tuple[ProgrammeYearOut, bool]:
    """Create or replace the rules of ``year``; returns (the year, created?).

    Only this year's row changes. Setting the same rules again writes nothing."""
    _check_year(year, rules)
    row = await session.get(ProgrammeYear, year, with_for_update=True)
    values = rules.model_dump()
    created = row is None
    if row is None:
        row = ProgrammeYear(year=year, **values, created_at=clock.now(), updated_at=clock.now())
        session.add(row)
    else:
        current = {f: getattr(row, f) for f in RULE_FIELDS}
        if current == values:
            return ProgrammeYearOut.model_validate(row, from_attributes=True), False
        for field, value in values.items():
            setattr(row, field, value)
        row.updated_at = clock.now()
    session.add(
        ProgrammeYearRevision(
            year=year, changed_by=actor, rules=rules.model_dump(mode="json"), changed_at=clock.now()
        )
    )
    await session.flush()
    await session.refresh(row)
    return ProgrammeYearOut.model_validate(row, from_attributes=True), created


async def get_year(session: AsyncSession, year: int) -> ProgrammeYear:
    row = await session.get(ProgrammeYear, year)
    if row is None:
        raise NotFound(f"no programme is set for {year}; set one with `halsosamtal programme set`")
    return row


class NoProgrammeYear(Conflict):
    """Work that needs a year's rules was asked for a year that has none."""

    code = "no-programme-year"


async def require_year(session: AsyncSession, year: int) -> ProgrammeYear:
    """The year's rules for work that needs them: 409 ``no-programme-year`` naming the year
    (a client that asks for a batch did nothing wrong in its request; the region has not set
    the year up yet)."""
    row = await session.get(ProgrammeYear, year)
    if row is None:
        raise NoProgrammeYear(
            f"no programme is set for {year}: set its rules first "
            f"(PUT /v1/programme-years/{year}, or `halsosamtal programme set {year}`)",
            field="year",
            year=year,
        )
    return row


async def get_year_out(session: AsyncSession, year: int) -> ProgrammeYearOut:
    return ProgrammeYearOut.model_validate(await get_year(session, year), from_attributes=True)


async def current_rules(session: AsyncSession, year: int) -> ProgrammeRules | None:
    row = await session.get(ProgrammeYear, year)
    if row is None:
        return None
    return ProgrammeRules.model_validate({f: getattr(row, f) for f in RULE_FIELDS})


async def list_years(session: AsyncSession) -> list[ProgrammeYearOut]:
    rows = await session.scalars(select(ProgrammeYear).order_by(ProgrammeYear.year))
    return [ProgrammeYearOut.model_validate(r, from_attributes=True) for r in rows]


async def revisions(session: AsyncSession, year: int) -> list[ProgrammeRevisionOut]:
    await get_year(session, year)
    rows = await session.scalars(
        select(ProgrammeYearRevision)
        .where(ProgrammeYearRevision.year == year)
        .order_by(ProgrammeYearRevision.id)
    )
    return [ProgrammeRevisionOut.model_validate(r, from_attributes=True) for r in rows]
