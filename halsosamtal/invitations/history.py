"""Operators: an invitation's status history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core.http import MAX_ID, Session, problem_responses
from halsosamtal.invitations import lifecycle, service
from halsosamtal.invitations.lifecycle import InvitationHistory

router = APIRouter(prefix="/invitations", tags=["invitations"])


@router.get(
    "/{invitation_id}/history",
    operation_id="get_invitation_history",
    response_model=InvitationHistory,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_invitation_history(
    invitation_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: Session, principal: Operator, audit: Audit
) -> InvitationHistory:
    """Every status change of the invitation, oldest first: from, to, when, why and by whom
    (an API client's name, `cli` or `worker`). A listing move is recorded with the status
    unchanged and the units in the reason."""
    history = await lifecycle.history(session, invitation_id)
    audit.add("read", await service.resident_ids(session, [invitation_id]))
    return history
