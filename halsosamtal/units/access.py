"""Route dependencies for acting on one care unit: the HSA-id in the path, and the check that
the client may act for it (an ``ehr`` client only for its own units, operators for all)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.core.http import Session
from halsosamtal.units.models import HSA_ID_PATTERN, CareUnit
from halsosamtal.units.service import get_unit

HsaId = Annotated[str, Path(pattern=HSA_ID_PATTERN, examples=["SE2321000131-E000000000123"])]
OperatorOrEhr = Annotated[Principal, Depends(require("operator", "ehr"))]


async def acting_unit(hsa_id: HsaId, session: Session, principal: OperatorOrEhr) -> CareUnit:
    """The unit in the path, when the client may act for it: 404 unknown, 403 another's.

    A dependency rather than a call in the handler, so the 403 comes before the body is
    validated: a client learns nothing from a unit it may not act for."""
    return await get_unit(session, hsa_id, principal)


ActingUnit = Annotated[CareUnit, Depends(acting_unit)]
