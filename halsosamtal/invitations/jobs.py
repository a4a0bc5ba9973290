"""Worker jobs for invitation batches."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from arq import cron, func

from halsosamtal.core import clock
from halsosamtal.core.database import session_scope
from halsosamtal.invitations import batch
from halsosamtal.invitations.models import BatchRun

log = logging.getLogger(__name__)


async def run_batch(ctx: dict[str, Any], batch_id: int, generation: int = 0) -> dict[str, int]:
    """Run a recorded batch. A finished one is left alone; anything else runs (again), which is
    safe: the run creates only what is missing. A job of an older ``generation`` (its batch was
    taken over since) does nothing."""
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
        generation=generation,
        lease_s=ctx["resources"].settings.batch_lease_s,
    )
    log.info("batch %s for %s: %s planned, %s created", batch_id, row.year, result.planned, result.created)
    return {"batch_id": batch_id, "created": result.created}


async def start_queued_batches(ctx: dict[str, Any]) -> int:
    """Start the batches operators asked for, and resume those whose run stopped.

    The batch_runs row is the durable request (written in the API's transaction) and holds the
    lease of whoever runs it; this finds in Postgres every batch without a live runner, whatever
    Redis still knows, and enqueues it under a job id of its own generation: a killed worker's
    job id stays blocked in Redis (arq's in-progress key) for the job timeout."""
    sessionmaker, settings = ctx["resources"].sessionmaker, ctx["resources"].settings
    async with session_scope(sessionmaker) as s:
        pickups = await batch.pick_up(s, settings.batch_lease_s)
    queue = settings.queue_name
    for p in pickups:
        if p.generation:
            log.warning("resuming batch %s: its run stopped (take-over %s)", p.batch_id, p.generation)
        else:
            log.info("starting queued batch %s", p.batch_id)
        await ctx["redis"].enqueue_job(
            "run_batch",
            p.batch_id,
            p.generation,
            _job_id=batch_job_id(queue, p.batch_id, p.requested_at, p.generation),
        )
    return len(pickups)


def batch_job_id(queue: str, batch_id: int, requested_at: dt.datetime, generation: int = 0) -> str:
    """The arq job id of a batch: unique for the life of a Redis. Batch ids start again at 1
    when a database is recreated, and arq keeps a job's result (and so its id) for a while: the
    time of the request (to the microsecond) tells a new batch 1 from an old one. The queue name
    keeps deployments sharing one Redis apart; a take-over's generation keeps it from the job
    of the run it takes over."""
    job_id = f"{queue}:batch:{batch_id}:{int(requested_at.timestamp() * 1_000_000)}"
    return f"{job_id}:r{generation}" if generation else job_id


FUNCTIONS = [func(run_batch, timeout=3600, max_tries=3)]
CRON_JOBS = [cron(start_queued_batches, second=set(range(0, 60, 5)), unique=True, timeout=30)]
