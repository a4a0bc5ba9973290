"""Looking up one resident by personnummer (sent in a body, never in a URL)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.audit.trail import Residents
from halsosamtal.core.errors import InvalidInput, NotFound
from halsosamtal.core.http import LocalTime, StrictModel
from halsosamtal.residents import personnummer as pnr
from halsosamtal.residents.models import ListingPeriod, Resident
from halsosamtal.units.models import CareUnit


class ResidentLookup(StrictModel):
    personnummer: str = Field(
        min_length=10,
        max_length=13,
        examples=["19880320-0016"],
        description="10 or 12 digits, with or without '-' or '+'",
    )


class ResidentNamed(StrictModel):
    """A portal request's body: the resident is the one the resident token names; the body may
    name them too (it must then be the same resident, else 403)."""

    personnummer: str | None = Field(
        None,
        min_length=10,
        max_length=13,
        examples=["19880320-0016"],
        description="YYYYMMDD-NNNC (or 10 or 12 digits, with or without '-' or '+'). "
        "Optional: the resident is the one the X-Resident-Token names; when given it must "
        "be the same resident (else 403 `resident-token-other-resident`). Required only where the "
        "service runs with asserted identity (HALSOSAMTAL_PORTAL_IDENTITY=asserted, pilots).",
    )


class Address(BaseModel):
    address_line: str | None
    postal_code: str | None
    city: str | None


class ListingOut(BaseModel):
    care_unit: str = Field(description="HSA-id")
    listed_from: dt.date
    listed_to: dt.date | None = Field(description="Exclusive; null while listed")


class ResidentOut(BaseModel):
    personnummer: str = Field(description="YYYYMMDD-NNNC")
    coordination_number: bool
    birth_date: dt.date
    sex: str = Field(description="female or male, from the personnummer")
    care_unit: str | None = Field(description="HSA-id of the unit listed at now; null: not listed")
    municipality: str | None = Field(description="Null for a resident with protected identity")
    deso: str | None = Field(description="Null for a resident with protected identity")
    protected_identity: bool = Field(
        description="Protected identity (skyddad folkbokföring): nothing that locates the resident is "
        "shown (no address, DeSO area, municipality or phone number); letters go through the tax "
        "agency's forwarding"
    )
    address: Address | None = Field(
        description="Null for a resident with protected identity: their address is never "
        "stored from the register nor shown"
    )
    phone: str | None = Field(description="Null for a resident with protected identity")
    digital_mailbox: bool
    language: str
    deceased_on: dt.date | None
    emigrated_on: dt.date | None
    moved_out_on: dt.date | None
    listings: list[ListingOut] = Field(description="Listing history, oldest first")
    updated_at: LocalTime


def requested_identity(value: str) -> pnr.Identity:
    """A personnummer sent in a request body, parsed (any accepted form: 10 or 12 digits, with
    or without separator); a bad one is a 422 on ``personnummer`` saying why."""
    try:
        return pnr.parse(value)
    except pnr.InvalidPersonnummer as exc:
        raise InvalidInput(f"personnummer: {exc.reason}", field="personnummer") from exc


def requested_personnummer(value: str) -> str:
    """The 12-digit form the register stores, of a personnummer sent in a request."""
    return requested_identity(value).personnummer


def residents_by_personnummer(values: Iterable[str]) -> Residents:
    """The residents with these personnummer (any accepted form; those in the register), as a
    query for the access log, which runs it inside its own INSERT ... SELECT
    (``Trail.add_query``): no round trip of its own, and none with the log off."""
    numbers = sorted({requested_personnummer(v) for v in values})
    return Residents(
        "SELECT id FROM residents WHERE personnummer = ANY(CAST(:personnummer AS text[]))",
        {"personnummer": numbers},
    )


async def ids_by_personnummer(session: AsyncSession, values: Iterable[str]) -> list[int]:
    """The ids of the residents with these personnummer (any accepted form; those in the
    register), for the access log."""
    numbers = list({requested_personnummer(v) for v in values})
    if not numbers:
        return []
    return list(await session.scalars(select(Resident.id).where(Resident.personnummer.in_(numbers))))


async def lookup(session: AsyncSession, value: str) -> ResidentOut:
    identity = requested_identity(value)
    row = (
        await session.execute(
            select(Resident, CareUnit.hsa_id)
            .outerjoin(CareUnit, CareUnit.id == Resident.care_unit_id)
            .where(Resident.personnummer == identity.personnummer)
        )
    ).first()
    if row is None:
        raise NotFound("no resident with that personnummer in the register")
    resident, hsa_id = row
    listings = await session.execute(
        select(CareUnit.hsa_id, ListingPeriod.listed_from, ListingPeriod.listed_to)
        .join(CareUnit, CareUnit.id == ListingPeriod.care_unit_id)
        .where(ListingPeriod.resident_id == resident.id)
        .order_by(ListingPeriod.listed_from, ListingPeriod.id)
    )
    return ResidentOut(
        personnummer=pnr.format_long(resident.personnummer),
        coordination_number=resident.coordination_number,
        birth_date=resident.birth_date,
        sex="male" if resident.sex == "M" else "female",
        care_unit=hsa_id,
        municipality=None if resident.protected_identity else resident.municipality,
        deso=None if resident.protected_identity else resident.deso,
        protected_identity=resident.protected_identity,
        address=None
        if resident.protected_identity
        else Address(
            address_line=resident.address_line, postal_code=resident.postal_code, city=resident.city
        ),
        phone=None if resident.protected_identity else resident.phone,
        digital_mailbox=resident.digital_mailbox,
        language=resident.language,
        deceased_on=resident.deceased_on,
        emigrated_on=resident.emigrated_on,
        moved_out_on=resident.moved_out_on,
        listings=[ListingOut(care_unit=h, listed_from=f, listed_to=t) for h, f, t in listings],
        updated_at=resident.updated_at,
    )
