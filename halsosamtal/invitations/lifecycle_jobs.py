"""Worker jobs of the invitation lifecycle: the release of due messages, reminders, expiry,
withdrawal and listing moves.

Jobs take plain values (``as_of`` as an ISO date, default today in Sweden), open their own
transaction per chunk and are idempotent: a second run for the same day changes nothing.
Cron times are in the worker's time zone (run it in Europe/Stockholm).
"""

from __future__ import annotations

from datetime import date
from typing import Any

from arq import cron
from arq.worker import func

from halsosamtal.core.clock import local_today as today
from halsosamtal.core.runtime import Resources
from halsosamtal.invitations import lifecycle
from halsosamtal.invitations.release import release_due
from halsosamtal.messaging.outbox import CONFIRMATION_KINDS

RELEASE_TIMEOUT_S = 1800
REMINDERS_TIMEOUT_S = 1800
UPKEEP_TIMEOUT_S = 1800


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


async def send_reminders(ctx: dict[str, Any], as_of: str | None = None) -> dict[str, Any]:
    """Create the reminders due on ``as_of`` and release them (with anything else due)."""
    resources: Resources = ctx["resources"]
    run = await lifecycle.run_reminders(resources.sessionmaker, resources.settings, _day(as_of))
    return run.as_dict()


async def expire_invitations(ctx: dict[str, Any], as_of: str | None = None) -> dict[str, int]:
    """Expire planned and open invitations whose last valid day has passed."""
    resources: Resources = ctx["resources"]
    return (await lifecycle.expire_all(resources.sessionmaker, _day(as_of), actor="worker")).as_dict()


async def withdraw_invitations(ctx: dict[str, Any], as_of: str | None = None) -> dict[str, int]:
    """Withdraw invitations of residents who died or left, and move invitations with listings
    (the safety net behind the resident import's own call)."""
    resources: Resources = ctx["resources"]
    return (await lifecycle.withdraw_all(resources.sessionmaker, _day(as_of), actor="worker")).as_dict()


FUNCTIONS: list[Any] = [
    func(release_messages, timeout=RELEASE_TIMEOUT_S),
    func(release_confirmations, timeout=RELEASE_TIMEOUT_S),
    func(send_reminders, timeout=REMINDERS_TIMEOUT_S),
    func(expire_invitations, timeout=UPKEEP_TIMEOUT_S),
    func(withdraw_invitations, timeout=UPKEEP_TIMEOUT_S),
]
"""For ``WorkerSettings.functions``."""

CRON_JOBS: list[Any] = [
    cron(release_messages, hour={6}, minute={0}, unique=True, timeout=RELEASE_TIMEOUT_S),
    cron(release_confirmations, minute=None, second={30}, unique=True, timeout=RELEASE_TIMEOUT_S),
    cron(send_reminders, hour={7}, minute={0}, unique=True, timeout=REMINDERS_TIMEOUT_S),
    cron(expire_invitations, hour={2}, minute={0}, unique=True, timeout=UPKEEP_TIMEOUT_S),
    cron(withdraw_invitations, hour={2}, minute={0}, unique=True, timeout=UPKEEP_TIMEOUT_S),
]
"""Release daily at 06:00 (invitations, reminders, appointment reminders), confirmations every
minute at :30; reminders daily at 07:00 (after the 06:00 release); expiry and withdrawal daily
at 02:00. The messaging service delivers every minute at :00."""
