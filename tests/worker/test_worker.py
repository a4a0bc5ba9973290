"""The worker runs real jobs from Redis end to end (arq in burst mode)."""

from __future__ import annotations

import time

import pytest

from halsosamtal.core.runtime import Resources, heartbeat_key
from halsosamtal.core.settings import Settings
from services.worker import metrics
from services.worker import settings as worker_settings
from tests.conftest import run_worker_burst


async def test_worker_starts_on_a_current_schema_and_records_its_heartbeat(
    settings: Settings, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_settings, "get_settings", lambda: settings)
    key = heartbeat_key(settings.queue_name)
    await resources.redis.delete(key)
    beats = metrics.JOBS_FINISHED.labels("heartbeat")._value.get()
    worker = await run_worker_burst(settings, cron_jobs=worker_settings.WorkerSettings.cron_jobs)
    assert worker.ctx.get("resources") is not None
    assert metrics.JOBS_FINISHED.labels("heartbeat")._value.get() == beats + 1
    # A worker that stops removes its beat: its health check and /v1/status turn red at once.
    assert await resources.redis.get(key) is None


async def test_the_heartbeat_is_the_time_of_the_beat_and_expires(
    settings: Settings, resources: Resources
) -> None:
    key = heartbeat_key(settings.queue_name)
    await worker_settings.heartbeat({"resources": resources, "redis": resources.redis})
    beat = await resources.redis.get(key)
    assert beat is not None
    assert abs(float(beat) - time.time()) < 5
    assert 0 < await resources.redis.ttl(key) <= 300
    await resources.redis.delete(key)
