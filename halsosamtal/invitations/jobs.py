"""Worker jobs for invitation batches."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from arq import cron, func
from sqlalchemy import select

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
        row.as_of or dt.date.today(),
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
        ids = list(await s.scalars(select(BatchRun.id).where(BatchRun.state == "queued")))
    queue = ctx["resources"].settings.queue_name
    if ids:
        log.info("starting queued batches %s", ", ".join(map(str, ids)))
    for batch_id in ids:
        # Job ids are global in Redis; the queue name keeps two deployments (or test runs)
        # sharing one Redis from blocking each other's batches.
        await ctx["redis"].enqueue_job("run_batch", batch_id, _job_id=f"{queue}:batch:{batch_id}")
    return len(ids)


FUNCTIONS = [func(run_batch, timeout=3600, max_tries=3)]
CRON_JOBS = [cron(start_queued_batches, second=set(range(0, 60, 5)), unique=True, timeout=30)]
