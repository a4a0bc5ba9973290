"""The patient portal's calls for the resident it acts for: their invitation, and declining it.

Identity: the resident is the one the portal's ``X-Resident-Token`` names, the login the
region's identity provider signed (see ``halsosamtal.portal.identity``); a personnummer in the
body is optional and must then be the same resident. It is never in the URL, where it would
reach access logs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import Field

from halsosamtal.access.dependencies import require
from halsosamtal.access.schemas import Principal
from halsosamtal.audit.dependencies import Audit
from halsosamtal.booking import service as booking
from halsosamtal.booking.schemas import AppointmentOut
from halsosamtal.core.http import MAX_ID, Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.invitations import lifecycle
from halsosamtal.invitations.lifecycle import InvitationView
from halsosamtal.portal.identity import Resident, on_behalf
from halsosamtal.residents.lookup import ResidentNamed, residents_by_personnummer

router = APIRouter(prefix="/portal", tags=["portal"])

Portal = Annotated[Principal, Depends(require("portal"))]


class ResidentInvitation(InvitationView):
    """An invitation as the resident sees it, with its booked time."""

    appointment: AppointmentOut | None = Field(None, description="The booked time, when there is one")


class DeclineRequest(ResidentNamed):
    invitation_id: int = Field(ge=1, le=MAX_ID, description="`id` of the resident's invitation")


@router.post(
    "/invitation",
    operation_id="portal_get_invitation",
    response_model=ResidentInvitation,
    responses=problem_responses(401, 403, 404, 422),
)
async def get_invitation(
    body: ResidentNamed, session: Session, principal: Portal, audit: Audit, resident: Resident
) -> ResidentInvitation:
    """The logged-in resident's current invitation (planned, open, booked or attended): unit,
    year, age, last valid day, status and the booked time. 404 `no-invitation` when there is none.

    The resident is the one `X-Resident-Token` names."""
    who = resident.named(body.personnummer)
    found = await lifecycle.current_invitation(session, who)
    appointment = await booking.current_appointment(session, found.id)
    audit.add_query("read", residents_by_personnummer([who]))
    return ResidentInvitation(**found.model_dump(), appointment=appointment)


@router.post(
    "/invitation/decline",
    operation_id="portal_decline_invitation",
    response_model=ResidentInvitation,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def decline_invitation(
    body: DeclineRequest,
    request: Request,
    session: Session,
    principal: Portal,
    audit: Audit,
    resident: Resident,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The resident declines their invitation: no reminders or other messages about it follow.
    A booked time is cancelled first (the time is freed and the resident told).

    404 `no-invitation` when `invitation_id` is not this resident's invitation; 409
    `invitation-closed` when it is attended, completed, withdrawn or expired. Declining twice
    answers the same. The resident is the one `X-Resident-Token` names."""
    who = resident.named(body.personnummer)

    async def decline() -> ResidentInvitation:
        await booking.cancel_for_decline(session, who, body.invitation_id, actor=principal.name)
        declined = await lifecycle.decline(session, who, body.invitation_id, actor=principal.name)
        audit.add_query("update", residents_by_personnummer([who]))
        return ResidentInvitation(**declined.model_dump())

    return await idempotent(
        session, request, principal.client_id, idempotency_key, on_behalf(body, who), decline
    )
