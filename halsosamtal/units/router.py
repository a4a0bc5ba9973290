"""Care units: register import, list, get, and changes of participation and capacity."""

from __future__ import annotations

import codecs
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query, Request

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.core.imports import ImportSummary
from halsosamtal.units import service
from halsosamtal.units.access import HsaId, OperatorOrEhr
from halsosamtal.units.schemas import CareUnitOut, CareUnitUpdate

router = APIRouter(prefix="/care-units", tags=["care units"])

CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "hsa_id,name,municipality,operator,participating,weekly_capacity\n"
                "SE2321000131-E000000000123,Vårdcentralen Andersberg,1380,public,true,20\n",
            }
        },
    }
}


async def decode_lines(request: Request) -> AsyncIterator[str]:
    """The request body as text lines, decoded incrementally (a bad byte is a 422)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    try:
        async for chunk in request.stream():
            pending += decoder.decode(chunk)
            *complete, pending = pending.split("\n")
            for line in complete:
                yield line + "\n"
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise InvalidInput("the body is not UTF-8 text", field="body") from exc
    if pending:
        yield pending


@router.get(
    "",
    operation_id="list_care_units",
    response_model=list[CareUnitOut],
    responses=problem_responses(401, 403),
)
async def list_care_units(
    session: Session,
    principal: OperatorOrEhr,
    participating: Annotated[bool | None, Query(description="Only (non-)participating units")] = None,
    municipality: Annotated[str | None, Query(pattern=r"^[0-9]{4}$")] = None,
) -> list[CareUnitOut]:
    """Care units, by HSA-id. An EHR client sees the units it acts for."""
    return await service.list_units(
        session, principal, participating=participating, municipality=municipality
    )


@router.post(
    "/import",
    operation_id="import_care_units",
    response_model=ImportSummary,
    responses=problem_responses(401, 403, 422),
    openapi_extra=CSV_BODY,
)
async def import_care_units(request: Request, session: Session, principal: Operator) -> ImportSummary:
    """Upsert care units from the register CSV
    (`hsa_id,name,municipality,operator,participating,weekly_capacity`).

    Valid rows are imported, each bad row is reported with its line and reason."""
    lines = [line async for line in decode_lines(request)]
    return await service.import_care_units(session, lines, source="api", actor=principal.name)


@router.get(
    "/{hsa_id}",
    operation_id="get_care_unit",
    response_model=CareUnitOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_care_unit(hsa_id: HsaId, session: Session, principal: OperatorOrEhr) -> CareUnitOut:
    """One care unit. An EHR client may read only the units it acts for."""
    return await service.get_unit_out(session, hsa_id, principal)


@router.patch(
    "/{hsa_id}",
    operation_id="update_care_unit",
    response_model=CareUnitOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def update_care_unit(
    hsa_id: HsaId, change: CareUnitUpdate, session: Session, principal: Operator
) -> CareUnitOut:
    """Change whether the unit takes part in the programme, and its weekly capacity."""
    return await service.update_unit(session, hsa_id, change)
