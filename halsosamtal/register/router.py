"""``POST /residents/import``: a register extract, and what it sets off in invitations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import text

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import AccessPurpose, ActingPerson
from halsosamtal.audit.trail import Who
from halsosamtal.core import clock
from halsosamtal.core.context import current_request_id
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import ServiceDay, Session, problem_responses
from halsosamtal.core.imports import ImportSummary
from halsosamtal.register.service import import_register
from halsosamtal.residents.importer import COLUMNS, DEFAULT_REJECT_LIMIT

router = APIRouter(tags=["residents"])

_CSV_TYPES = ("text/csv", "text/plain", "application/octet-stream")
_RESIDENTS_CSV_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": ",".join(COLUMNS) + "\n"
                "19880320-0016,SE2321000131-E000000000123,1380,1380C1010,false,Storgatan 1,"
                "30220,Halmstad,0701234567,true,sv,,\n",
            }
        },
    }
}


@router.post(
    "/residents/import",
    operation_id="import_residents",
    response_model=ImportSummary,
    responses=problem_responses(401, 403, 422),
    openapi_extra=_RESIDENTS_CSV_BODY,
)
async def import_residents_endpoint(
    request: Request,
    session: Session,
    principal: Operator,
    acting_person: ActingPerson = None,
    purpose: AccessPurpose = None,
    snapshot: Annotated[
        bool,
        Query(
            description="The body is the whole register: residents missing from it are "
            "marked moved out (kept, not deleted)"
        ),
    ] = False,
    as_of: Annotated[
        ServiceDay | None,
        Query(
            description="Date of the register extract (default: today); listing periods "
            "change on this date, and extracts must come in date order"
        ),
    ] = None,
) -> ImportSummary:
    """Import residents from the population and listing register (CSV with a header row,
    columns in any order; only `personnummer` is required).

    Every valid row is upserted by personnummer and the listing history kept; each bad row is
    reported with its physical line (the header is line 1) and reason, and changes nothing.
    `rejects` holds the first 1000 of them (`rejects_truncated` counts the rest). A problem
    with the file itself (no header, an unknown column, not UTF-8) is a 422 and nothing is
    imported. Addresses of residents with protected identity are never stored."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type and media_type not in _CSV_TYPES:
        raise InvalidInput(f"send the register as text/csv, not {media_type}", field="body")
    # A register extract takes longer than the per-statement budget of an ordinary request.
    await session.execute(text("SET LOCAL statement_timeout = 0"))
    day = as_of or clock.local_today()
    # In the same transaction: invitations of residents who died or moved are withdrawn, and
    # open ones follow a listing to another participating unit.
    return await import_register(
        session,
        request.stream(),
        as_of=day,
        snapshot=snapshot,
        source="api",
        actor=principal.name,
        reject_limit=DEFAULT_REJECT_LIMIT,
        who=Who(
            principal.client_id, principal.name, principal.role, acting_person, purpose, current_request_id()
        ),
        audit=request.app.state.settings.audit_log,
    )
