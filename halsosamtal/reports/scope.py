"""Which care units a report covers: all for operators, an EHR client's own units, or one unit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.access.schemas import Principal
from halsosamtal.units.models import CareUnit
from halsosamtal.units.service import get_unit

# The report statements are big one-off aggregates: Postgres' JIT compiles them for longer than
# they take to run (0.8 s of 5 s on 400,000 invitations). For this transaction only.
NO_JIT = text("SET LOCAL jit = off")


@dataclass(frozen=True)
class Scope:
    """The units a report is restricted to; ``unit_ids`` None means every unit."""

    unit_ids: list[int] | None = None
    hsa_ids: list[str] | None = None

    @property
    def everything(self) -> bool:
        return self.unit_ids is None


EVERYTHING = Scope()


async def resolve_scope(session: AsyncSession, principal: Principal | None, unit: str | None) -> Scope:
    """The report's units. ``unit`` (an HSA-id) narrows to one: 404 when unknown, 403 when the
    client may not act for it. Without it an EHR client gets its own units, an operator (or the
    CLI, ``principal`` None) all."""
    if unit is not None:
        found = await get_unit(session, unit, principal)
        return Scope([found.id], [found.hsa_id])
    if principal is None or principal.role == "operator":
        return EVERYTHING
    ids = sorted(principal.care_unit_ids)
    hsa = (
        await session.scalars(select(CareUnit.hsa_id).where(CareUnit.id.in_(ids)).order_by(CareUnit.hsa_id))
    ).all()
    return Scope(ids, list(hsa))
