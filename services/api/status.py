"""``GET /v1/status``: the service as an operator on call sees it, in one answer.

Composed here, above the features: the worker's heartbeat (Redis), the outbox (messaging), the
batch runs (invitations) and the schema version (Alembic)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import text

from halsosamtal.access.dependencies import Operator
from halsosamtal.core.http import LocalTime, Session, problem_responses
from halsosamtal.core.migrations import head_revisions
from halsosamtal.core.runtime import last_heartbeat
from halsosamtal.invitations.service import unfinished_batches
from halsosamtal.messaging.stats import outbox_figures

router = APIRouter(tags=["operations"])

REDIS_TIMEOUT_S = 2


class WorkerStatus(BaseModel):
    status: Literal["up", "down"]
    reason: str | None = Field(None, description="Why the worker counts as down")
    last_heartbeat_at: LocalTime | None = Field(description="The last heartbeat of a worker of this queue")
    heartbeat_age_s: float | None = Field(description="Seconds since that heartbeat")
    max_age_s: int = Field(description="A heartbeat older than this counts as down")


class MessagesStatus(BaseModel):
    planned: int = Field(description="Waiting for their send day")
    queued: int = Field(description="Released, waiting for delivery")
    sending: int = Field(description="Claimed by a delivery pass")
    failed: int = Field(description="Could not be delivered; see GET /v1/messages/failed")
    oldest_queued_at: LocalTime | None = Field(
        description="When the longest-waiting queued message was queued"
    )
    delivery_lag_s: float = Field(description="Seconds that message has waited (0: none waits)")


class BatchProgress(BaseModel):
    id: int
    year: int
    status: Literal["queued", "running"]
    done: int
    total: int
    progress: float | None = Field(description="done / total, 0-1 (None until the run has its plan)")
    requested_at: LocalTime
    started_at: LocalTime | None


class SchemaVersion(BaseModel):
    database: list[str] = Field(description="Alembic revision(s) the database is at")
    code: list[str] = Field(description="The migrations' head revision(s) of this code")
    current: bool


class ServiceStatus(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        description="degraded: the worker is down or the schema is behind"
    )
    worker: WorkerStatus
    messages: MessagesStatus
    batches: list[BatchProgress] = Field(description="Batch runs queued or running, oldest first")
    schema_version: SchemaVersion


@cache
def _code_heads() -> list[str]:
    return sorted(head_revisions())


async def worker_status(redis: Any, queue_name: str, max_age_s: int) -> WorkerStatus:
    try:
        beat = await asyncio.wait_for(last_heartbeat(redis, queue_name), REDIS_TIMEOUT_S)
    except Exception as exc:
        return WorkerStatus(
            status="down",
            reason=f"Redis does not answer ({type(exc).__name__})",
            last_heartbeat_at=None,
            heartbeat_age_s=None,
            max_age_s=max_age_s,
        )
    if beat is None:
        return WorkerStatus(
            status="down",
            reason="no worker heartbeat recorded",
            last_heartbeat_at=None,
            heartbeat_age_s=None,
            max_age_s=max_age_s,
        )
    age = max(time.time() - beat, 0.0)
    stale = age > max_age_s
    return WorkerStatus(
        status="down" if stale else "up",
        reason=f"the last heartbeat is {age:.0f} s old (over {max_age_s} s)" if stale else None,
        last_heartbeat_at=datetime.fromtimestamp(beat, UTC),
        heartbeat_age_s=round(age, 1),
        max_age_s=max_age_s,
    )


@router.get(
    "/status",
    operation_id="get_status",
    response_model=ServiceStatus,
    responses=problem_responses(401, 403, 422),
)
async def get_status(request: Request, session: Session, principal: Operator) -> ServiceStatus:
    """The worker's last heartbeat, the outbox's queued and failed messages, the batch runs in
    progress, and whether the database's schema is the code's."""
    settings = request.app.state.settings
    worker = await worker_status(
        request.app.state.resources.redis, settings.queue_name, settings.worker_heartbeat_max_age_s
    )
    figures = await outbox_figures(session)
    batches = await unfinished_batches(session)
    database = sorted((await session.scalars(text("SELECT version_num FROM alembic_version"))).all())
    code = _code_heads()
    schema = SchemaVersion(database=database, code=code, current=set(database) == set(code))
    return ServiceStatus(
        status="ok" if worker.status == "up" and schema.current else "degraded",
        worker=worker,
        messages=MessagesStatus(
            planned=figures.total("planned"),
            queued=figures.total("queued"),
            sending=figures.total("sending"),
            failed=figures.total("failed"),
            oldest_queued_at=figures.oldest_queued_at,
            delivery_lag_s=round(figures.oldest_queued_age_s, 1),
        ),
        batches=[
            BatchProgress(
                id=b.id,
                year=b.year,
                status="running" if b.status == "running" else "queued",
                done=b.done,
                total=b.total,
                progress=round(b.done / b.total, 4) if b.total else None,
                requested_at=b.requested_at,
                started_at=b.started_at,
            )
            for b in batches
        ],
        schema_version=schema,
    )
