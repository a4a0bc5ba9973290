"""Operators' view of the outbox: failed messages (retrying one is invitations': it may release
the message anew)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from halsosamtal.access.dependencies import Operator
from halsosamtal.audit.dependencies import Audit
from halsosamtal.core.http import IdCursorQuery, Page, Session, problem_responses
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
    audit: Audit,
    kind: Annotated[MessageKind | None, Query(description="Only messages of this kind")] = None,
    channel: Annotated[
        Channel | None,
        Query(description="Only messages on this channel (those that never got one are left out)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: IdCursorQuery = None,
) -> Page[MessageOut]:
    """Messages that could not be delivered, newest first: after the last try, on a permanent
    refusal by the gateway, or because no channel reaches the resident (`last_error`
    `no_address`). Texts and addresses are not shown."""
    page = await outbox.list_failed(session, kind=kind, channel=channel, limit=limit, cursor=cursor)
    audit.add("read", (m.resident_id for m in page.items))
    return page
