"""The worker's metrics: jobs counted by function and outcome, and the database figures read at
scrape time from the worker's own port, matching what the tables hold."""

from __future__ import annotations

import asyncio
import re
import socket
import time
from typing import Any

import httpx
from arq import Retry
from arq.worker import func
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.runtime import heartbeat_key
from halsosamtal.core.settings import Settings
from services.worker import metrics
from tests.conftest import run_worker_burst
from tests.messaging.factories import execute, fetch, make_invitation, make_year, resident


def _value(text: str, name: str, labels: str = "") -> float | None:
    pattern = rf"^{name}{re.escape('{' + labels + '}') if labels else ''} (\S+)$"
    for line in text.splitlines():
        match = re.match(pattern, line)
        if match:
            return float(match.group(1))
    return None


def _count(counter: Any, function: str) -> float:
    return float(counter.labels(function)._value.get())


async def ok_job(ctx: dict[str, Any]) -> str:
    return "done"


async def broken_job(ctx: dict[str, Any]) -> None:
    raise RuntimeError("broken on purpose")


async def again_job(ctx: dict[str, Any]) -> str:
    if ctx["job_try"] == 1:
        raise Retry(defer=0)
    return "second time"


async def test_jobs_are_counted_by_function_and_outcome(settings: Settings, resources: Any) -> None:
    names = ("ok_job", "broken_job", "again_job")
    counters = (metrics.JOBS_STARTED, metrics.JOBS_FINISHED, metrics.JOBS_FAILED, metrics.JOBS_RETRIED)
    before = {(c, n): _count(c, n) for c in counters for n in names}
    for name in names:
        await resources.redis.enqueue_job(name, _queue_name=settings.queue_name)
    functions = metrics.instrument([ok_job, broken_job, func(again_job, timeout=30)], 60)
    await run_worker_burst(settings, functions=functions, on_startup=None, on_shutdown=None)

    def delta(counter: Any, name: str) -> float:
        return _count(counter, name) - before[(counter, name)]

    assert [delta(c, "ok_job") for c in counters] == [1, 1, 0, 0]
    assert [delta(c, "broken_job") for c in counters] == [1, 0, 1, 0]
    assert [delta(c, "again_job") for c in counters] == [2, 1, 0, 1]


def test_wrapped_jobs_keep_their_names_and_settings() -> None:
    from services.worker.settings import WorkerSettings

    names = {getattr(f, "name", None) for f in WorkerSettings.functions}
    assert {"run_batch", "deliver_messages", "send_reminders"} <= names
    assert all(f.coroutine.__wrapped__ for f in WorkerSettings.functions)
    crons = {c.name for c in WorkerSettings.cron_jobs}
    assert any(name.endswith(":heartbeat") for name in crons)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_the_worker_port_shows_the_outbox_and_batches_as_the_database_holds_them(
    sessionmaker: async_sessionmaker[AsyncSession], make_unit: Any, settings: Settings, resources: Any
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    for _ in range(4):
        await make_invitation(sessionmaker, await resident(sessionmaker, unit.id), unit.id)
    await execute(
        sessionmaker,
        "UPDATE messages SET status = 'queued', channel = 'sms', body = 'x', "
        "queued_at = now() - interval '5 minutes' WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT 2)",
    )
    await execute(
        sessionmaker,
        "INSERT INTO batch_runs (year, requested_by, state, total, done, started_at) "
        "VALUES (2027, 'test', 'running', 80, 20, now()), (2027, 'test', 'queued', 0, 0, NULL)",
    )
    port = _free_port()
    key = heartbeat_key(settings.queue_name)
    await resources.redis.set(key, str(time.time() - 7), ex=60)
    server = metrics.serve("127.0.0.1", port, sessionmaker, resources.redis, settings.queue_name)
    try:
        # The HTTP server answers in its own thread; the figures are read on this event loop.
        response = await asyncio.to_thread(httpx.get, f"http://127.0.0.1:{port}/metrics", timeout=20)
    finally:
        server.stop()
        await resources.redis.delete(key)
    text = response.text
    rows = await fetch(
        sessionmaker,
        "SELECT coalesce(channel, 'none') AS channel, status, count(*) AS n FROM messages GROUP BY 1, 2",
    )
    assert rows
    for row in rows:
        labels = f'channel="{row.channel}",status="{row.status}"'
        assert _value(text, "halsosamtal_outbox_messages", labels) == row.n
    assert _value(text, "halsosamtal_outbox_messages", 'channel="sms",status="queued"') == 2
    assert _value(text, "halsosamtal_outbox_messages", 'channel="none",status="planned"') == 2
    assert _value(text, "halsosamtal_outbox_messages", 'channel="letter",status="failed"') == 0
    lag = _value(text, "halsosamtal_outbox_oldest_queued_age_seconds")
    assert lag is not None
    assert 299 <= lag < 400
    assert _value(text, "halsosamtal_batches", 'status="running"') == 1
    assert _value(text, "halsosamtal_batches", 'status="queued"') == 1
    assert _value(text, "halsosamtal_batch_progress_ratio", 'year="2027"') == 0.25
    assert _value(text, "halsosamtal_batch_done", 'year="2027"') == 20
    assert _value(text, "halsosamtal_reminders_sent_today") == 0
    assert _value(text, "halsosamtal_worker_database_up") == 1
    age = _value(text, "halsosamtal_worker_heartbeat_age_seconds")
    assert age is not None
    assert 7 <= age < 30
    assert _value(text, "halsosamtal_worker_redis_up") == 1
