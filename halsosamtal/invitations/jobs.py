"""Worker jobs for invitation batches."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from arq import cron, func
from sqlalchemy import select

from halsosamtal.core import clock
from halsosamtal.invitations import batch
from halsosamtal.invitations.models import BatchRun

log = logging.getLogger(__name__)


async def run_batch(ctx: dict[str, Any], batch_id: int) -> dict[str, int]:
    """Run a recorded batch. A finished one is left alone; anything else runs (again), which is
    safe: the run creates only what is missing."""
    sessionmaker = ctx["resources"].sessionmaker
    async with sessionmaker() as s:
        row = await s.get(BatchRun, batch_id)
    if row is None or row.state == "done":
        return {"batch_id": batch_id, "created": 0}
    result = await batch.run(
        sessionmaker,
        row.year,
        row.as_of or clock.local_today(),
        batch_id=batch_id,
        actor=f"worker for {row.requested_by}",
    )
    log.info("batch %s for %s: %s planned, %s created", batch_id, row.year, result.planned, result.created)
    return {"batch_id": batch_id, "created": result.created}


async def start_queued_batches(ctx: dict[str, Any]) -> int:
    """Enqueue the batches operators asked for. The batch_runs row is the durable request
    (written in the API's transaction); this picks it up after it is committed."""
    sessionmaker = ctx["resources"].sessionmaker
    async with sessionmaker() as s:
        queued = (
            await s.execute(select(BatchRun.id, BatchRun.requested_at).where(BatchRun.state == "queued"))
        ).all()
    queue = ctx["resources"].settings.queue_name
    if queued:
        log.info("starting queued batches %s", ", ".join(str(b.id) for b in queued))
    for batch_id, requested_at in queued:
        await ctx["redis"].enqueue_job(
            "run_batch", batch_id, _job_id=batch_job_id(queue, batch_id, requested_at)
        )
    return len(queued)


def batch_job_id(queue: str, batch_id: int, requested_at: dt.datetime) -> str:
    """The arq job id of a batch: unique for the life of a Redis. Batch ids start again at 1
    when a database is recreated, and arq keeps a job's result (and so its id) for a while: the
    time of the request (to the microsecond) tells a new batch 1 from an old one. The queue name
    keeps deployments sharing one Redis apart."""
    return f"{queue}:batch:{batch_id}:{int(requested_at.timestamp() * 1_000_000)}"


FUNCTIONS = [func(run_batch, timeout=3600, max_tries=3)]
CRON_JOBS = [cron(start_queued_batches, second=set(range(0, 60, 5)), unique=True, timeout=30)]
