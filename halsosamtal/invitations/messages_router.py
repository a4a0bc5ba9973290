"""``POST /messages/release`` and ``POST /messages/{id}/retry``: the release of due messages
(what the worker does every morning, on an operator's word), and a failed message's retry,
which may release it anew (its channel and text chosen again from today's register)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core import clock
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import MAX_ID, ServiceDay, Session, StrictModel, problem_responses
from halsosamtal.core.idempotency import IdempotencyKey, idempotent
from halsosamtal.invitations import release
from halsosamtal.messaging.outbox import MessageOut

router = APIRouter(prefix="/messages", tags=["messages"])


class ReleaseRequest(StrictModel):
    as_of: ServiceDay | None = Field(
        None, description="Release what is due on or before this day (default: today; never after today)"
    )


class ReleaseOut(BaseModel):
    as_of: dt.date
    queued: int = Field(description="Messages queued for delivery, each with its channel and text")
    failed: int = Field(description="Messages that have no channel (no address); see /messages/failed")
    opened: int = Field(description="Invitations opened by their letter going out")
    cancelled: int = Field(description="Due messages cancelled because their invitation had closed")
    template_errors: list[str] = Field(
        description="Distinct template problems; those messages stay planned until the template is fixed"
    )


@router.post(
    "/release",
    operation_id="release_messages",
    response_model=ReleaseOut,
    responses=problem_responses(401, 403, 422),
)
async def release_messages(
    body: ReleaseRequest, request: Request, session: Session, principal: Operator, audit: Audit
) -> ReleaseOut:
    """Release the messages whose send day has come, now, instead of waiting for the worker's
    morning run: each gets its channel and text and is queued; invitation letters open their
    invitations. Safe to repeat (a second call finds nothing new), so it needs no
    Idempotency-Key. Works chunk by chunk, each committed: an interrupted call left only whole
    chunks, and the next call (or the worker) does the rest."""
    today = clock.local_today()
    as_of = body.as_of or today
    if as_of > today:
        raise InvalidInput(
            f"as_of {as_of.isoformat()} is after today ({today.isoformat()}): messages go out on their day",
            field="as_of",
        )
    result = await release.release_due(
        request.app.state.sessionmaker, request.app.state.settings, as_of, actor=principal.name
    )
    audit.add_run("update", {"as_of": as_of.isoformat(), **result.as_dict()})
    return ReleaseOut(as_of=as_of, **result.as_dict())


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
