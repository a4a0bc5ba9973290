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
from halsosamtal.core.http import ServiceDay, Session, problem_responses
from halsosamtal.core.imports import (
    DEFAULT_REJECT_LIMIT,
    DelimiterQuery,
    EncodingQuery,
    ImportSummary,
    csv_body,
    parse_delimiter,
    parse_encoding,
)
from halsosamtal.register.service import import_register
from halsosamtal.residents.importer import COLUMNS

router = APIRouter(tags=["residents"])

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
    delimiter: DelimiterQuery = None,
    encoding: EncodingQuery = None,
) -> ImportSummary:
    """Import residents from the population and listing register (CSV with a header row,
    columns in any order; only `personnummer` is required). A column the body does not have is
    left as it is for every known resident (a new one gets its default); `columns` and
    `columns_left_unchanged` in the answer say which.

    The body may be what Swedish Excel saves: `,` or `;` delimited, UTF-8 with or without a
    BOM or Windows-1252, CRLF line endings; the delimiter and encoding are detected (from the
    header line and the start of the body) unless given, and `format` in the answer says how
    the body was read. Booleans are true/false, ja/nej or 1/0 (any case).

    Every valid row is upserted by personnummer and the listing history kept; each bad row is
    reported with its physical line (the header is line 1) and reason, and changes nothing.
    `rejects` holds the first 1000 of them (`rejects_truncated` counts the rest). A problem
    with the file itself (no header row, an unknown column, not text) is a 422 and nothing is
    imported. Addresses of residents with protected identity are never stored. No reason
    quotes a value of the body: a reject names the line and the column."""
    given_delimiter, given_encoding = parse_delimiter(delimiter), parse_encoding(encoding)
    body = csv_body(request, "the register")
    # A register extract takes longer than the per-statement budget of an ordinary request.
    await session.execute(text("SET LOCAL statement_timeout = 0"))
    day = as_of or clock.local_today()
    # In the same transaction: invitations of residents who died or moved are withdrawn, and
    # open ones follow a listing to another participating unit.
    return await import_register(
        session,
        body,
        as_of=day,
        snapshot=snapshot,
        source="api",
        actor=principal.name,
        reject_limit=DEFAULT_REJECT_LIMIT,
        who=Who(
            principal.client_id, principal.name, principal.role, acting_person, purpose, current_request_id()
        ),
        audit=request.app.state.settings.audit_log,
        delimiter=given_delimiter,
        encoding=given_encoding,
    )
