"""arq ``WorkerSettings``: ``arq services.worker.settings.WorkerSettings``.

Jobs take ids and plain values, open their own transaction and may run more than once.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from arq import cron

import halsosamtal.models  # noqa: F401 - every table registered before any session flushes
from halsosamtal.core.logging import configure_logging
from halsosamtal.core.runtime import heartbeat_key, open_resources, redis_settings
from halsosamtal.core.settings import get_settings
from services.worker.jobs import CRON_JOBS, FUNCTIONS

ROUTINE_JOBS = (
    "heartbeat",
    "start_queued_batches",
    "release_confirmations",
    "deliver_messages",
    "seal_access_log",
)
"""Sweeps that run every few seconds or every minute; they log a line themselves when they did
something, and arq's own start and end lines for them (and its half-minutely 'recording
health' line) are left out of the log."""


class QuietRoutineJobs(logging.Filter):
    """Drops arq's INFO lines about the routine sweeps (a third of all lines otherwise);
    their warnings and errors pass."""

    _routine = re.compile(r"cron:\S*?:?(" + "|".join(ROUTINE_JOBS) + r")\b")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        message = record.getMessage()
        return not (message.startswith("recording health") or self._routine.search(message))


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    arq_worker_log = logging.getLogger("arq.worker")
    if not any(isinstance(f, QuietRoutineJobs) for f in arq_worker_log.filters):
        arq_worker_log.addFilter(QuietRoutineJobs())
    # Refuses to start (SchemaOutOfDate) when the database is not migrated.
    ctx["resources"] = await open_resources(settings, application_name="halsosamtal-worker")


async def shutdown(ctx: dict[str, Any]) -> None:
    resources = ctx.get("resources")
    if resources is not None:
        await resources.close()


async def heartbeat(ctx: dict[str, Any]) -> None:
    """Record that a worker is alive, so operators can see it from the API and the CLI."""
    key = heartbeat_key(ctx["resources"].settings.queue_name)
    await ctx["redis"].set(key, str(time.time()), ex=300)


def _redis() -> Any:
    from halsosamtal.core import infra

    settings = get_settings()
    url = settings.redis_url or infra.find(settings, quiet=True).redis_url
    return redis_settings(url)


def _of_this_queue(jobs: list[Any], queue: str) -> list[Any]:
    """Cron jobs named after the queue. A unique cron job's arq id is its name and the minute it
    runs, and arq ids are global in Redis: with the default names, of two deployments sharing a
    Redis only the first to queue a tick ran it (on its own database), and the other's batch
    pickups, deliveries, releases and reminders were skipped."""
    return [dataclasses.replace(job, name=f"cron:{queue}:{job.coroutine.__qualname__}") for job in jobs]


class WorkerSettings:
    functions: ClassVar[list[Any]] = list(FUNCTIONS)
    cron_jobs: ClassVar[list[Any]] = _of_this_queue(
        [cron(heartbeat, second={0, 30}, unique=True, run_at_startup=True, timeout=10), *CRON_JOBS],
        get_settings().queue_name,
    )
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    redis_settings = _redis()
    # Cron times (release 06:00, reminders 07:00, ...) are the region's local time.
    timezone = ZoneInfo("Europe/Stockholm")
    job_timeout = 3600
    max_tries = 5
    health_check_interval = 30
