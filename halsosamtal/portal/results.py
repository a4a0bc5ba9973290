"""The resident's own result, in plain words, for the patient portal."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core.http import Session, problem_responses
from halsosamtal.portal.identity import Resident
from halsosamtal.residents.lookup import residents_by_personnummer
from halsosamtal.results import service
from halsosamtal.results.plain import summary
from halsosamtal.results.schemas import PortalResultRequest, ResidentSummary

router = APIRouter(prefix="/portal", tags=["portal"])

Portal = Annotated[Principal, Depends(require("portal"))]


@router.post(
    "/results",
    operation_id="portal_get_result",
    response_model=ResidentSummary,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_result(
    body: PortalResultRequest, session: Session, principal: Portal, audit: Audit, resident: Resident
) -> ResidentSummary:
    """The resident's health talk result in plain words (Swedish by default): the 10-year risk
    or why it was not estimated, BMI, each living habit, the advice given and the referrals.
    404 `no-invitation` when there is no completed talk with a result (a retracted one is gone)."""
    who = resident.named(body.personnummer)
    result, unit_name = await service.resident_result(session, who, body.invitation_id)
    audit.add_query("read", residents_by_personnummer([who]))
    return summary(result, unit_name, body.language)
