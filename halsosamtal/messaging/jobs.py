"""Worker jobs of the outbox: the daily release and the delivery every minute.

Jobs take plain values (``as_of`` as an ISO date, default today in Sweden), open their own
transaction per chunk, and are safe to run twice or in two workers at once (rows are claimed
with ``FOR UPDATE SKIP LOCKED``). Cron times are in the worker's time zone: run the worker with
``timezone = ZoneInfo("Europe/Stockholm")``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from arq import cron
from arq.worker import func

from halsosamtal.core.clock import local_today as today
from halsosamtal.core.runtime import Resources
from halsosamtal.messaging.outbox import CONFIRMATION_KINDS, deliver_due, release_due

RELEASE_TIMEOUT_S = 1800
DELIVERY_BUDGET_S = 50
"""A delivery run stops claiming after this long, so runs a minute apart rarely overlap (they
may: claims never collide)."""
DELIVERY_TIMEOUT_S = 240
"""Budget plus the longest chunk in flight (100 messages, 10 at a time, 10 s timeout each).
A run cancelled mid-send leaves its messages 'sending'; the lease hands them to a later run."""


def _day(as_of: str | None) -> date:
    return date.fromisoformat(as_of) if as_of else today()


async def release_messages(ctx: dict[str, Any], as_of: str | None = None) -> dict[str, Any]:
    """Queue the messages whose send date has come (``as_of``, default today)."""
    resources: Resources = ctx["resources"]
    result = await release_due(resources.sessionmaker, resources.settings, _day(as_of))
    return result.as_dict()


async def release_confirmations(ctx: dict[str, Any]) -> dict[str, Any]:
    """Queue booking, move and cancellation confirmations written since the last run: a resident
    who has just booked hears of it within a minute or two, not the next morning."""
    resources: Resources = ctx["resources"]
    result = await release_due(resources.sessionmaker, resources.settings, today(), kinds=CONFIRMATION_KINDS)
    return result.as_dict()


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


FUNCTIONS: list[Any] = [
    func(release_messages, timeout=RELEASE_TIMEOUT_S),
    func(release_confirmations, timeout=RELEASE_TIMEOUT_S),
    func(deliver_messages, timeout=DELIVERY_TIMEOUT_S),
]
"""For ``WorkerSettings.functions`` (enqueue by name, e.g. a release for a given day)."""

CRON_JOBS: list[Any] = [
    cron(release_messages, hour={6}, minute={0}, unique=True, timeout=RELEASE_TIMEOUT_S),
    cron(release_confirmations, minute=None, second={30}, unique=True, timeout=RELEASE_TIMEOUT_S),
    cron(deliver_messages, minute=None, second={0}, unique=True, timeout=DELIVERY_TIMEOUT_S),
]
"""Release daily at 06:00 (invitations, reminders, appointment reminders), confirmations every
minute at :30, delivery every minute at :00."""
