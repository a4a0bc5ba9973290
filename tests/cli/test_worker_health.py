"""``halsosamtal worker health``: green only with a fresh heartbeat and a Redis that answers."""

from __future__ import annotations

import socket
import time

from halsosamtal.cli.worker import check
from halsosamtal.core.runtime import Resources, heartbeat_key
from halsosamtal.core.settings import Settings


async def test_health_follows_the_heartbeat(settings: Settings, resources: Resources) -> None:
    key = heartbeat_key(settings.queue_name)
    await resources.redis.delete(key)
    ok, reason = await check(settings.redis_url, settings.queue_name, 45)
    assert not ok
    assert reason.startswith("no worker heartbeat on queue")
    try:
        await resources.redis.set(key, str(time.time() - 5), ex=60)
        ok, reason = await check(settings.redis_url, settings.queue_name, 45)
        assert ok, reason
        await resources.redis.set(key, str(time.time() - 120), ex=60)
        ok, reason = await check(settings.redis_url, settings.queue_name, 45)
        assert not ok
        assert "120 s old (over 45 s)" in reason
    finally:
        await resources.redis.delete(key)


async def test_health_is_red_when_redis_does_not_answer(settings: Settings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    ok, reason = await check(f"redis://127.0.0.1:{closed}/0", settings.queue_name, 45)
    assert not ok
    assert reason.startswith(f"Redis at redis://127.0.0.1:{closed}/0 does not answer")
    assert "\n" not in reason
