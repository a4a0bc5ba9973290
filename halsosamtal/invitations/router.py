"""Operators: plan and start a year's invitation batch, follow it, and list invitations."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core import clock
from halsosamtal.core.http import MAX_ID, IdCursorQuery, Page, ServiceDay, Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.invitations import batch, service
from halsosamtal.invitations.schemas import BatchOut, BatchRequest, InvitationOut, PlanOut
from halsosamtal.units.models import HSA_ID_PATTERN

router = APIRouter(tags=["invitations"])

Status = Literal["planned", "open", "booked", "completed", "declined", "withdrawn", "expired"]


@router.get(
    "/batches/plan",
    operation_id="plan_batch",
    response_model=PlanOut,
    responses=problem_responses(401, 403, 409, 422),
)
async def plan_batch(
    session: Session,
    principal: Operator,
    year: Annotated[int, Query(ge=2000, le=2100)],
    as_of: Annotated[ServiceDay | None, Query(description="Default: today")] = None,
) -> PlanOut:
    """Preview a year's batch, per unit and month: invitations, expected bookings, capacity.
    Writes nothing; a run on the same day writes exactly this."""
    return await service.plan_out(session, year, as_of or clock.local_today())


@router.post(
    "/batches",
    operation_id="start_batch",
    response_model=BatchOut,
    status_code=202,
    responses=problem_responses(401, 403, 409, 422),
)
async def start_batch(
    body: BatchRequest,
    request: Request,
    session: Session,
    principal: Operator,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Start a year's batch on the worker. It starts within seconds; follow it with
    `GET /v1/batches/{id}`. Running a batch again creates only what is missing; with an
    Idempotency-Key a repeated request answers the first batch instead of queueing another."""

    async def start() -> BatchOut:
        batch_id = await batch.new_batch(session, body.year, actor=principal.name, as_of=body.as_of)
        return await service.get_batch(session, batch_id)

    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        body,
        start,
        status_code=202,
        locate=lambda batch: f"/v1/batches/{batch['id']}",
    )


@router.get(
    "/batches",
    operation_id="list_batches",
    response_model=list[BatchOut],
    responses=problem_responses(401, 403, 422),
)
async def list_batches(
    session: Session, principal: Operator, year: Annotated[int | None, Query(ge=2000, le=2100)] = None
) -> list[BatchOut]:
    """The latest batch runs, newest first."""
    return await service.list_batches(session, year)


@router.get(
    "/batches/{batch_id}",
    operation_id="get_batch",
    response_model=BatchOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_batch(
    batch_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: Session, principal: Operator
) -> BatchOut:
    """A batch run's state and counts: done of total, created, errors."""
    return await service.get_batch(session, batch_id)


@router.get(
    "/invitations",
    operation_id="list_invitations",
    response_model=Page[InvitationOut],
    responses=problem_responses(401, 403, 422),
)
async def list_invitations(
    session: Session,
    principal: Operator,
    audit: Audit,
    year: Annotated[int | None, Query(ge=2000, le=2100)] = None,
    care_unit: Annotated[str | None, Query(pattern=HSA_ID_PATTERN)] = None,
    status: Status | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: IdCursorQuery = None,
) -> Page[InvitationOut]:
    """Invitations, filtered by year, unit and status, a page at a time. Each invitation shown is
    recorded in the access log."""
    page = await service.list_invitations(
        session, year=year, care_unit=care_unit, status=status, limit=limit, cursor=cursor
    )
    audit.add("read", await service.resident_ids(session, (i.id for i in page.items)))
    return page
