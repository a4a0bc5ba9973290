"""Operators' view of the outbox: failed messages, and retrying one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.http import MAX_ID, Page, Session, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.messaging import outbox
from halsosamtal.messaging.channels import Channel
from halsosamtal.messaging.outbox import MessageOut
from halsosamtal.messaging.templates import MessageKind

router = APIRouter(prefix="/messages", tags=["messages"])


@router.get(
    "/failed",
    operation_id="list_failed_messages",
    response_model=Page[MessageOut],
    responses=problem_responses(401, 403, 422),
)
async def list_failed_messages(
    session: Session,
    principal: Operator,
    kind: Annotated[MessageKind | None, Query(description="Only messages of this kind")] = None,
    channel: Annotated[
        Channel | None,
        Query(description="Only messages on this channel (those that never got one are left out)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[MessageOut]:
    """Messages that could not be delivered, newest first: after the last try, on a permanent
    refusal by the gateway, or because no channel reaches the resident (`last_error`
    `no_address`). Texts and addresses are not shown."""
    return await outbox.list_failed(session, kind=kind, channel=channel, limit=limit, cursor=cursor)


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
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Give a failed message one more try (same id, so the gateway still sends it at most once).

    A message that failed in delivery is queued again with its text; one that never had a
    channel goes through release again with today's register data, and is queued or fails
    again with its reason. 409 `message-not-failed` unless it failed; 409
    `message-not-retryable` when its invitation has closed (declined, withdrawn, expired)."""
    settings = request.app.state.settings
    return await idempotent(
        session,
        request,
        principal.client_id,
        idempotency_key,
        None,
        lambda: outbox.retry_message(session, settings, message_id, actor=principal.name),
    )
