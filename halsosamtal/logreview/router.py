"""The region's follow-up of the access log (loggkontroll): events by resident, client, acting
person and period, as JSON pages or CSV. Operators only."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header
from fastapi.responses import Response
from pydantic import Field

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit import chain, service
from halsosamtal.audit.dependencies import Audit
from halsosamtal.audit.service import AccessEventPage
from halsosamtal.core.http import IdCursorField, ServiceTime, Session, StrictModel, problem_responses
from halsosamtal.residents.lookup import ids_by_personnummer

router = APIRouter(prefix="/audit", tags=["access log"])


class AuditSearch(StrictModel):
    """Filters; all optional. A resident is named by personnummer in the body, never in a URL."""

    personnummer: str | None = Field(None, min_length=10, max_length=13, description="Whose data")
    client: str | None = Field(None, min_length=1, max_length=100, description="API client name, or 'cli'")
    acting_person: str | None = Field(
        None, min_length=1, max_length=100, description="e.g. a clinician's HSA-id"
    )
    since: ServiceTime | None = Field(None, description="From this moment (inclusive)")
    until: ServiceTime | None = Field(None, description="Before this moment")
    limit: int = Field(100, ge=1, le=10_000)
    cursor: IdCursorField = None
    format: Literal["json", "csv"] = Field("json", description="csv: the page as a CSV file")


@router.post(
    "/search",
    operation_id="search_access_log",
    response_model=AccessEventPage,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
        **problem_responses(401, 403, 404, 422),
    },
)
async def search_access_log(
    body: AuditSearch,
    session: Session,
    principal: Operator,
    audit: Audit,
    accept: Annotated[str | None, Header()] = None,
) -> Response | AccessEventPage:
    """Access events newest first: who (client, role, acting person) accessed whose data (resident
    id), what (operation, read/create/update/delete), why (purpose), with what outcome, when, and
    the request id. Filter by resident, client, acting person and period; a page at a time. With
    `format: csv` (or `Accept: text/csv`) the page comes as CSV. Looking up a resident's events
    is itself recorded in the log."""
    resident_id = None
    if body.personnummer is not None:
        found = await ids_by_personnummer(session, [body.personnummer])
        resident_id = found[0] if found else -1  # an unknown resident has no events
        audit.add("read", found)
    page = await service.search(
        session,
        resident_id=resident_id,
        client=body.client,
        actor=body.acting_person,
        since=body.since,
        until=body.until,
        limit=body.limit,
        cursor=body.cursor,
    )
    if body.format == "csv" or (accept or "").split(";")[0].strip().lower() == "text/csv":
        headers = {"Content-Disposition": 'attachment; filename="access-events.csv"'}
        if page.next_cursor:
            headers["X-Next-Cursor"] = page.next_cursor
        return Response(service.to_csv(page.items), media_type="text/csv; charset=utf-8", headers=headers)
    return page


@router.get(
    "/verify",
    operation_id="verify_access_log",
    response_model=chain.Verdict,
    responses=problem_responses(401, 403),
)
async def verify_access_log(session: Session, principal: Operator) -> chain.Verdict:
    """Check the access log's hash chain from its start (or where retention's last archive
    ended): `ok`, how many events were checked, how many are not sealed yet, and the first
    broken link when there is one."""
    return await chain.verify(session)
