"""The worker process outlives Redis: it waits, reconnects by itself and says so; a signal
still stops it. A real arq worker against a real redis-server the test starts and kills."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pytest
from arq.connections import RedisSettings

from services.worker.supervisor import supervise
from tests.faults.servers import OwnRedis


async def test_the_worker_waits_for_redis_reconnects_and_stops_on_a_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = OwnRedis(Path(tempfile.mkdtemp(prefix="halsosamtal-supervisor-")))
    started: list[float] = []

    async def record_start(ctx: dict[str, Any]) -> None:
        started.append(asyncio.get_running_loop().time())

    async def noop(ctx: dict[str, Any]) -> None:
        pass

    class Settings:
        functions: ClassVar[list[Any]] = [noop]
        redis_settings = RedisSettings(port=redis.port, conn_retries=0)
        queue_name = "supervisor-test:queue"
        poll_delay = 0.05
        on_startup = staticmethod(record_start)

    caplog.set_level(logging.INFO, logger="halsosamtal.worker")
    running = asyncio.create_task(supervise(Settings, backoff=(0.1, 0.2)))
    try:
        for _ in range(100):  # Redis is not there yet: the supervisor keeps trying
            await asyncio.sleep(0.05)
            if "Redis unavailable" in caplog.text:
                break
        assert "Redis unavailable" in caplog.text
        assert not running.done()
        assert started == []

        redis.start()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if started:
                break
        assert len(started) == 1, "the worker started once Redis was there"

        redis.stop()  # gone while the worker polls: it must not end the process
        for _ in range(200):
            await asyncio.sleep(0.05)
            if caplog.text.count("Redis unavailable") > 1:
                break
        assert caplog.text.count("Redis unavailable") > 1
        assert not running.done()
        redis.start()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if len(started) == 2:
                break
        assert len(started) == 2
        assert "worker connected again after" in caplog.text

        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor's handler takes it, not pytest's
        assert await asyncio.wait_for(running, timeout=10) == 0
    finally:
        running.cancel()
        redis.stop()
