"""Results: EHR adapters post, amend and retract a talk's result; they and operators read it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.audit.dependencies import Audit
from halsosamtal.audit.trail import Action
from halsosamtal.core.http import MAX_ID, Session, problem_responses
from halsosamtal.core.idempotency import Answer, IdempotencyKey, idempotent
from halsosamtal.results import service
from halsosamtal.results.ranges import PLAUSIBLE_RANGES
from halsosamtal.results.schemas import PostedResult, ResultHistory, ResultIn, ResultOut, RetractRequest
from halsosamtal.units.access import ActingUnit, HsaId, OperatorOrEhr

router = APIRouter(tags=["results"])

Ehr = Annotated[Principal, Depends(require("ehr"))]
ResultId = Annotated[int, Path(ge=1, le=MAX_ID)]

_RANGES = "\n".join(f"- `{name}`: {r.minimum}-{r.maximum} {r.unit}" for name, r in PLAUSIBLE_RANGES.items())


_POST_DESCRIPTION = f"""Post a health talk's result, as the EHR adapter of the unit that invited the resident.

201 for a new result (it completes the invitation and marks its booked time attended).
Posting the same `external_id` again: the same content answers 200 with the stored result
(`change: unchanged`, nothing stored); other content is an amendment, a new version with the
earlier kept (200, `change: amended`). After a retraction it completes the invitation again
(201, `change: completed_again`). The service derives BMI, SCORE2 (moderate-risk region; ages
40-69 without diabetes or known cardiovascular disease, else the reason) and the habit findings,
and stores the rule versions with the result.

A value outside its plausible range is a 422 `implausible-values` naming each field and its range:

{_RANGES}
"""


@router.post(
    "/results",
    operation_id="post_result",
    status_code=201,
    response_model=PostedResult,
    description=_POST_DESCRIPTION,
    responses={
        200: {"model": PostedResult, "description": "The same content again, or an amendment"},
        **problem_responses(401, 403, 404, 409, 422),
    },
)
async def post_result(
    body: ResultIn,
    request: Request,
    session: Session,
    principal: Ehr,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Post a health talk's result (see the description)."""

    async def post() -> Answer:
        result, status = await service.post(session, body, principal)
        actions: dict[str, Action] = {"created": "create", "completed_again": "create", "amended": "update"}
        action = actions.get(result.change, "read")
        audit.add(action, await service.resident_ids(session, [result.id]))
        return Answer(result, status)

    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        body,
        post,
        locate=lambda result: f"/v1/results/{result['id']}",
    )


@router.post(
    "/results/{result_id}/retract",
    operation_id="retract_result",
    response_model=ResultOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def retract_result(
    result_id: ResultId,
    body: RetractRequest,
    request: Request,
    session: Session,
    principal: OperatorOrEhr,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Retract a result entered in error: it is kept, marked retracted, and the invitation is no
    longer completed (a later reimbursement statement shows a reversal if its month was closed).
    Retracting twice answers the same."""

    async def retract() -> ResultOut:
        done = await service.retract(session, result_id, principal, reason=body.reason)
        audit.add("update", await service.resident_ids(session, [result_id]))
        return done

    return await idempotent(session, request, principal.client_id, idempotency_key, body, retract)


@router.get(
    "/results/{result_id}",
    operation_id="get_result",
    response_model=ResultOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_result(
    result_id: ResultId, session: Session, principal: OperatorOrEhr, audit: Audit
) -> ResultOut:
    """A result's current version with what the service derived."""
    found = await service.get(session, result_id, principal)
    audit.add("read", await service.resident_ids(session, [result_id]))
    return found


@router.get(
    "/results/{result_id}/history",
    operation_id="get_result_history",
    response_model=ResultHistory,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_result_history(
    result_id: ResultId, session: Session, principal: OperatorOrEhr, audit: Audit
) -> ResultHistory:
    """Every version of a result as posted, and every event (completed, amended, retracted)."""
    found = await service.history(session, result_id, principal)
    audit.add("read", await service.resident_ids(session, [result_id]))
    return found


@router.get(
    "/care-units/{hsa_id}/results",
    operation_id="get_result_by_external_id",
    response_model=ResultOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_result_by_external_id(
    hsa_id: HsaId,
    unit: ActingUnit,
    session: Session,
    audit: Audit,
    external_id: Annotated[str, Query(min_length=1, max_length=200, description="The EHR's own id")],
) -> ResultOut:
    """The unit's result with this `external_id` (the EHR's own record id)."""
    found = await service.by_external_id(session, unit.id, external_id)
    audit.add("read", await service.resident_ids(session, [found.id]))
    return found
