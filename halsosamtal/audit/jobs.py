"""Worker jobs of the access log: sealing new events into the hash chain every few seconds, and
retention's daily move of old sealed events to archive files."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from arq import cron
from arq.worker import func

from halsosamtal.audit import chain, service
from halsosamtal.core import clock
from halsosamtal.core.database import session_scope
from halsosamtal.core.runtime import Resources

log = logging.getLogger("halsosamtal.audit")


async def seal_access_log(ctx: dict[str, Any]) -> int:
    """Seal the events of finished transactions (chunk by chunk, one transaction each)."""
    resources: Resources = ctx["resources"]
    total = 0
    while True:
        async with session_scope(resources.sessionmaker) as session:
            sealed = await chain.seal(session)
        total += sealed
        if sealed < chain.SEAL_CHUNK:
            break
    if total:
        log.debug("sealed %s access events", total)
    return total


async def archive_access_log(ctx: dict[str, Any]) -> dict[str, Any]:
    """Move sealed events older than the retention period to an archive file."""
    resources: Resources = ctx["resources"]
    settings = resources.settings
    before = clock.now() - timedelta(days=settings.audit_retention_days)
    async with session_scope(resources.sessionmaker) as session:
        result = await service.archive(session, before, settings.audit_archive_directory, actor="worker")
    if result.events:
        log.info("archived %s access events to %s", result.events, result.file)
    return result.model_dump()


FUNCTIONS: list[Any] = [func(seal_access_log, timeout=120), func(archive_access_log, timeout=3600)]
CRON_JOBS: list[Any] = [
    cron(seal_access_log, second=set(range(0, 60, 10)), unique=True, timeout=120),
    cron(archive_access_log, hour={3}, minute={30}, unique=True, timeout=3600),
]
"""Sealing every 10 seconds; retention daily at 03:30."""
