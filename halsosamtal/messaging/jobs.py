"""Worker job of the outbox: the delivery every minute (the release is invitations').

Jobs take plain values (``as_of`` as an ISO date, default today in Sweden), open their own
transaction per chunk, and are safe to run twice or in two workers at once (rows are claimed
with ``FOR UPDATE SKIP LOCKED``). Cron times are in the worker's time zone: run the worker with
``timezone = ZoneInfo("Europe/Stockholm")``.
"""

from __future__ import annotations

from typing import Any

from arq import cron
from arq.worker import func

from halsosamtal.core.runtime import Resources
from halsosamtal.messaging.outbox import deliver_due

DELIVERY_BUDGET_S = 50
"""A delivery run stops claiming after this long, so runs a minute apart rarely overlap (they
may: claims never collide)."""
DELIVERY_TIMEOUT_S = 240
"""Budget plus the longest chunk in flight (100 messages, 10 at a time, 10 s timeout each).
A run cancelled mid-send leaves its messages 'sending'; the lease hands them to a later run."""


async def deliver_messages(ctx: dict[str, Any]) -> dict[str, Any]:
    """Deliver due queued messages (and take over claims whose worker died).

    Uses ``ctx["http_client"]`` (an ``httpx.AsyncClient``) when the worker built one at start-up,
    else a client for this run."""
    resources: Resources = ctx["resources"]
    report = await deliver_due(
        resources.sessionmaker,
        resources.settings,
        client=ctx.get("http_client"),
        time_budget_s=DELIVERY_BUDGET_S,
    )
    return report.as_dict()


FUNCTIONS: list[Any] = [func(deliver_messages, timeout=DELIVERY_TIMEOUT_S)]
"""For ``WorkerSettings.functions`` (enqueue by name, e.g. a release for a given day)."""

CRON_JOBS: list[Any] = [
    cron(deliver_messages, minute=None, second={0}, unique=True, timeout=DELIVERY_TIMEOUT_S),
]
"""Delivery every minute at :00 (the releases are in ``halsosamtal.invitations.lifecycle_jobs``)."""
