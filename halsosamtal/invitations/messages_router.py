"""``POST /messages/{id}/retry``: a failed message's retry, which may release it anew (its
channel and text chosen again from today's register), so it belongs with the release."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core.http import MAX_ID, Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.invitations import release
from halsosamtal.messaging.outbox import MessageOut

router = APIRouter(prefix="/messages", tags=["messages"])


@router.post(
    "/{message_id}/retry",
    operation_id="retry_message",
    response_model=MessageOut,
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def retry_message(
    message_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    request: Request,
    session: Session,
    principal: Operator,
    audit: Audit,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Give a failed message one more try (same id, so the gateway still sends it at most once).

    A message that failed in delivery is queued again with its text; one that never had a
    channel goes through release again with today's register data, and is queued or fails
    again with its reason. 409 `message-not-failed` unless it failed; 409
    `message-not-retryable` when its invitation has closed (declined, withdrawn, expired)."""
    settings = request.app.state.settings

    async def retry() -> MessageOut:
        out = await release.retry_message(session, settings, message_id, actor=principal.name)
        audit.add("update", [out.resident_id])
        return out

    return await idempotent(session, request, principal.client_id, idempotency_key, None, retry)
