"""The worker runs real jobs from Redis end to end (arq in burst mode)."""

from __future__ import annotations

import pytest
from arq.worker import Worker

from halsosamtal.core.runtime import WORKER_HEARTBEAT_KEY, Resources, redis_settings
from halsosamtal.core.settings import Settings
from services.worker import settings as worker_settings


async def test_worker_starts_on_a_current_schema_and_records_its_heartbeat(
    settings: Settings, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_settings, "get_settings", lambda: settings)
    await resources.redis.delete(WORKER_HEARTBEAT_KEY)
    worker = Worker(
        functions=worker_settings.WorkerSettings.functions,
        cron_jobs=worker_settings.WorkerSettings.cron_jobs,
        on_startup=worker_settings.startup,
        on_shutdown=worker_settings.shutdown,
        redis_settings=redis_settings(settings.redis_url),
        queue_name=settings.queue_name,
        burst=True,
        poll_delay=0.05,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    beat = await resources.redis.get(WORKER_HEARTBEAT_KEY)
    assert beat is not None
    assert float(beat) > 0
    assert worker.ctx.get("resources") is not None
