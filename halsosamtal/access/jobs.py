"""Upkeep of what API clients leave behind: old Idempotency-Key answers."""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.worker import func

from halsosamtal.core.database import session_scope
from halsosamtal.core.idempotency import prune
from halsosamtal.core.runtime import Resources


async def prune_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Delete Idempotency-Key answers older than ``idempotency_ttl_hours``."""
    resources: Resources = ctx["resources"]
    async with session_scope(resources.sessionmaker) as session:
        return await prune(session, older_than_hours=resources.settings.idempotency_ttl_hours)


FUNCTIONS: list[Any] = [func(prune_idempotency_keys, timeout=300)]
CRON_JOBS: list[Any] = [cron(prune_idempotency_keys, minute={17}, unique=True, timeout=300)]
"""Hourly, so a key is gone within an hour of its time."""
