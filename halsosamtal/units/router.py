"""Care units: register import, list, get, and changes of participation and capacity."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.core.imports import (
    DEFAULT_REJECT_LIMIT,
    DelimiterQuery,
    EncodingQuery,
    ImportSummary,
    csv_body,
    parse_delimiter,
    parse_encoding,
)
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
                "example": "hsa_id;name;municipality;operator;participating;weekly_capacity;"
                "visiting_address;phone\r\n"
                "SE2321000131-E000000000123;Vårdcentralen Andersberg;1380;public;ja;20;"
                "Andersbergsvägen 1, 302 45 Halmstad;035-123 45 00\r\n",
            }
        },
    }
}


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
async def import_care_units(
    request: Request,
    session: Session,
    principal: Operator,
    delimiter: DelimiterQuery = None,
    encoding: EncodingQuery = None,
) -> ImportSummary:
    """Upsert care units by HSA-id from the register CSV (header row, columns in any order:
    `hsa_id` (required), `name`, `municipality`, `operator`, `participating`,
    `weekly_capacity`, `visiting_address`, `phone`).

    A column the body does not have is left as it is on every known unit; a new unit needs
    `name`, `municipality` and `operator`. `columns` and `columns_left_unchanged` in the answer
    say which. The body may be what Swedish Excel saves (`,` or `;`, UTF-8 with or without a
    BOM or Windows-1252, CRLF): detected unless given, and `format` says how it was read.
    `participating` is true/false, ja/nej or 1/0 (any case).

    The body is streamed. Valid rows are imported; each bad row is reported with its line and
    column (never its values), the first 1000 in `rejects`. A problem with the body itself (no
    header row, an unknown column, not text, a line over 1 MiB) is a 422 and nothing is
    imported."""
    given_delimiter, given_encoding = parse_delimiter(delimiter), parse_encoding(encoding)
    return await service.import_care_units(
        session,
        csv_body(request, "the care units"),
        source="api",
        actor=principal.name,
        delimiter=given_delimiter,
        encoding=given_encoding,
        reject_limit=DEFAULT_REJECT_LIMIT,
    )


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
