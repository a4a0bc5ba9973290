"""The worker runs real jobs from Redis end to end (arq in burst mode)."""

from __future__ import annotations

import pytest

from halsosamtal.core.runtime import Resources, heartbeat_key
from halsosamtal.core.settings import Settings
from services.worker import settings as worker_settings
from tests.conftest import run_worker_burst


async def test_worker_starts_on_a_current_schema_and_records_its_heartbeat(
    settings: Settings, resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_settings, "get_settings", lambda: settings)
    await resources.redis.delete(heartbeat_key(settings.queue_name))
    worker = await run_worker_burst(settings, cron_jobs=worker_settings.WorkerSettings.cron_jobs)
    beat = await resources.redis.get(heartbeat_key(settings.queue_name))
    assert beat is not None
    assert float(beat) > 0
    assert worker.ctx.get("resources") is not None
