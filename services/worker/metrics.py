"""The worker's metrics on a port of its own (``HALSOSAMTAL_WORKER_METRICS_PORT``; 0: none).

- Jobs started, finished, failed and retried, and their duration, by function: counted by a
  wrapper around each job's coroutine (arq's own counters are not by function).
- The outbox by channel and status, the delivery lag, batch runs and their progress, and the
  reminders sent today: read from the database when Prometheus scrapes, so they are what the
  database holds at that moment (a scrape that cannot read it says so in
  ``halsosamtal_worker_database_up 0`` and shows none of those figures).
- Seconds since the last heartbeat of a worker of this queue, from Redis at scrape time (what
  ``halsosamtal worker health`` reads; with several workers, one of them beats each time).

Prometheus-client's HTTP server answers in a thread of its own; the database figures are
read on the worker's event loop (its engine belongs there) and waited for.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from arq.cron import CronJob
from arq.worker import Function, Retry, RetryJob
from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.metrics import Combined
from halsosamtal.core.runtime import last_heartbeat
from halsosamtal.invitations.service import unfinished_batches
from halsosamtal.messaging.models import CHANNELS, MESSAGE_STATUSES
from halsosamtal.messaging.stats import NO_CHANNEL, outbox_figures, reminders_sent_on

log = logging.getLogger("halsosamtal.worker")

SCRAPE_TIMEOUT_S = 10

JOBS_STARTED = Counter(
    "halsosamtal_worker_jobs_started", "Jobs the worker started, by function.", ["function"]
)
JOBS_FINISHED = Counter(
    "halsosamtal_worker_jobs_finished", "Jobs that ran to their end, by function.", ["function"]
)
JOBS_FAILED = Counter(
    "halsosamtal_worker_jobs_failed", "Jobs that raised an error or timed out, by function.", ["function"]
)
JOBS_RETRIED = Counter(
    "halsosamtal_worker_jobs_retried",
    "Jobs that asked to be run again or were cancelled to run again (a worker stopping), by function.",
    ["function"],
)
JOB_DURATION = Histogram(
    "halsosamtal_worker_job_duration_seconds",
    "How long jobs ran, by function.",
    ["function"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
)


def instrumented(coroutine: Callable[..., Awaitable[Any]], timeout_s: float | None) -> Callable[..., Any]:
    """``coroutine`` counted and timed under its own name (arq's job names stay as they were)."""
    name = coroutine.__qualname__

    @functools.wraps(coroutine)
    async def run(ctx: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        JOBS_STARTED.labels(name).inc()
        began = time.monotonic()
        try:
            result = await coroutine(ctx, *args, **kwargs)
        except (Retry, RetryJob):
            JOBS_RETRIED.labels(name).inc()
            raise
        except asyncio.CancelledError:
            # arq cancels a job at its timeout (a failure) and when the worker stops (it runs
            # again later): told apart by how long it ran.
            ran = time.monotonic() - began
            timed_out = timeout_s is not None and ran >= timeout_s - 0.5
            (JOBS_FAILED if timed_out else JOBS_RETRIED).labels(name).inc()
            raise
        except Exception:
            JOBS_FAILED.labels(name).inc()
            raise
        finally:
            JOB_DURATION.labels(name).observe(time.monotonic() - began)
        JOBS_FINISHED.labels(name).inc()
        return result

    return run


def instrument(jobs: list[Any], default_timeout_s: float) -> list[Any]:
    """arq functions and cron jobs (``func``/``cron`` objects or bare coroutines), each with its
    coroutine wrapped by :func:`instrumented`."""
    wrapped: list[Any] = []
    for job in jobs:
        if isinstance(job, Function | CronJob):
            timeout = job.timeout_s if job.timeout_s is not None else default_timeout_s
            wrapped.append(dataclasses.replace(job, coroutine=instrumented(job.coroutine, timeout)))
        else:
            wrapped.append(instrumented(job, default_timeout_s))
    return wrapped


class DatabaseFigures(Collector):
    """Gauges read from the database and Redis at scrape time, on the worker's event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sessionmaker: async_sessionmaker[AsyncSession],
        redis: Any,
        queue_name: str,
    ) -> None:
        self.loop = loop
        self.sessionmaker = sessionmaker
        self.redis = redis
        self.queue_name = queue_name

    async def heartbeat(self) -> list[GaugeMetricFamily]:
        beat = await last_heartbeat(self.redis, self.queue_name)
        if beat is None:
            return []
        return [
            GaugeMetricFamily(
                "halsosamtal_worker_heartbeat_age_seconds",
                "Seconds since a worker of this queue last recorded its heartbeat (absent: none recorded).",
                value=max(time.time() - beat, 0.0),
            ),
            GaugeMetricFamily(
                "halsosamtal_worker_last_heartbeat_timestamp_seconds",
                "When a worker of this queue last recorded its heartbeat (Unix time).",
                value=beat,
            ),
        ]

    async def read(self) -> list[GaugeMetricFamily]:
        async with self.sessionmaker() as session, session.begin():
            figures = await outbox_figures(session)
            batches = await unfinished_batches(session)
            reminders = await reminders_sent_on(session, clock.local_today())
        outbox = GaugeMetricFamily(
            "halsosamtal_outbox_messages",
            f"Messages in the outbox by channel ('{NO_CHANNEL}' before one is chosen) and status.",
            labels=["channel", "status"],
        )
        for channel in (*CHANNELS, NO_CHANNEL):
            for status in MESSAGE_STATUSES:
                outbox.add_metric([channel, status], figures.counts.get((channel, status), 0))
        lag = GaugeMetricFamily(
            "halsosamtal_outbox_oldest_queued_age_seconds",
            "How long the oldest queued message has waited for delivery (0: none waits).",
            value=figures.oldest_queued_age_s,
        )
        states = GaugeMetricFamily(
            "halsosamtal_batches", "Invitation batch runs queued or running.", labels=["status"]
        )
        for state in ("queued", "running"):
            states.add_metric([state], sum(1 for b in batches if b.status == state))
        done = GaugeMetricFamily(
            "halsosamtal_batch_done", "Invitations a running batch has written, by year.", labels=["year"]
        )
        total = GaugeMetricFamily(
            "halsosamtal_batch_total", "Invitations a running batch planned, by year.", labels=["year"]
        )
        ratio = GaugeMetricFamily(
            "halsosamtal_batch_progress_ratio",
            "done / total of a running batch (0-1), by year.",
            labels=["year"],
        )
        running: dict[int, tuple[int, int]] = {}
        for b in batches:
            if b.status == "running":
                d, t = running.get(b.year, (0, 0))
                running[b.year] = (d + b.done, t + b.total)
        for year, (d, t) in sorted(running.items()):
            done.add_metric([str(year)], d)
            total.add_metric([str(year)], t)
            ratio.add_metric([str(year)], d / t if t else 0.0)
        sent = GaugeMetricFamily(
            "halsosamtal_reminders_sent_today",
            "Reminders delivered today (Swedish calendar day).",
            value=reminders,
        )
        return [outbox, lag, states, done, total, ratio, sent]

    def _on_the_loop(self, what: str, read: Callable[[], Any]) -> list[GaugeMetricFamily] | None:
        try:
            families: list[GaugeMetricFamily] = asyncio.run_coroutine_threadsafe(read(), self.loop).result(
                SCRAPE_TIMEOUT_S
            )
        except Exception as exc:
            log.warning("metrics: the %s figures could not be read: %s: %s", what, type(exc).__name__, exc)
            return None
        return families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        beats = self._on_the_loop("Redis", self.heartbeat)
        yield GaugeMetricFamily(
            "halsosamtal_worker_redis_up",
            "1 when this scrape read the heartbeat from Redis, else 0.",
            value=0 if beats is None else 1,
        )
        yield from beats or []
        families = self._on_the_loop("database", self.read)
        yield GaugeMetricFamily(
            "halsosamtal_worker_database_up",
            "1 when this scrape read the database figures, else 0.",
            value=0 if families is None else 1,
        )
        yield from families or []


@dataclasses.dataclass
class MetricsServer:
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def serve(
    address: str, port: int, sessionmaker: async_sessionmaker[AsyncSession], redis: Any, queue_name: str
) -> MetricsServer:
    """Serve the process's metrics and the database figures on ``address:port`` (a thread)."""
    from prometheus_client import start_http_server

    figures = DatabaseFigures(asyncio.get_running_loop(), sessionmaker, redis, queue_name)
    server, thread = start_http_server(port, addr=address, registry=Combined(REGISTRY, figures))
    return MetricsServer(server, thread)
