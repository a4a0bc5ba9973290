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

from halsosamtal.core.logging import configure_logging
from halsosamtal.core.runtime import heartbeat_key, open_resources, redis_settings
from halsosamtal.core.settings import get_settings
from services.worker import metrics
from services.worker.jobs import CRON_JOBS, FUNCTIONS

JOB_TIMEOUT_S = 3600

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
    ctx["resources"] = resources = await open_resources(settings, application_name="halsosamtal-worker")
    if settings.worker_metrics_port:
        address, port = settings.worker_metrics_address, settings.worker_metrics_port
        try:
            ctx["metrics"] = metrics.serve(
                address, port, resources.sessionmaker, resources.redis, settings.queue_name
            )
        except OSError as exc:
            logging.getLogger("halsosamtal.worker").error(
                "cannot serve metrics on %s:%s (HALSOSAMTAL_WORKER_METRICS_PORT): %s", address, port, exc
            )
            await resources.close()
            raise SystemExit(1) from None
        logging.getLogger("halsosamtal.worker").info("metrics on http://%s:%s/metrics", address, port)


async def shutdown(ctx: dict[str, Any]) -> None:
    server = ctx.pop("metrics", None)
    if server is not None:
        server.stop()
    resources = ctx.get("resources")
    if resources is not None:
        # A worker that stops says so at once: the health check and /v1/status turn red now,
        # not when the last beat grows old. (Another worker of the queue beats again within 15 s.)
        try:
            await ctx["redis"].delete(heartbeat_key(resources.settings.queue_name))
        except Exception as exc:
            logging.getLogger("halsosamtal.worker").warning("heartbeat not removed: %s", exc)
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
    functions: ClassVar[list[Any]] = metrics.instrument(list(FUNCTIONS), JOB_TIMEOUT_S)
    cron_jobs: ClassVar[list[Any]] = _of_this_queue(
        metrics.instrument(
            [
                # Every 15 s: a stopped worker shows within HALSOSAMTAL_WORKER_HEARTBEAT_MAX_AGE_S.
                cron(heartbeat, second={0, 15, 30, 45}, unique=True, run_at_startup=True, timeout=10),
                *CRON_JOBS,
            ],
            JOB_TIMEOUT_S,
        ),
        get_settings().queue_name,
    )
    on_startup = startup
    on_shutdown = shutdown
    queue_name = get_settings().queue_name
    redis_settings = _redis()
    # Cron times (release 06:00, reminders 07:00, ...) are the region's local time.
    timezone = ZoneInfo("Europe/Stockholm")
    job_timeout = JOB_TIMEOUT_S
    max_tries = 5
    health_check_interval = 30
