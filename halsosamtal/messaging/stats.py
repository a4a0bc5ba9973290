"""The outbox in figures, for operators' monitoring: messages by channel and status, the age of
the oldest message waiting for delivery, and reminders sent on a day. Read straight from the
table each time, so the figures are what the database holds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

NO_CHANNEL = "none"
"""The channel label of messages that have none yet (planned ones get theirs when released)."""


@dataclass(frozen=True)
class OutboxFigures:
    counts: dict[tuple[str, str], int]
    """(channel, status) -> messages; channel ``none`` for messages without one."""
    oldest_queued_at: datetime | None
    """When the longest-waiting queued message was queued (None: nothing waits)."""
    now: datetime
    """The database's clock when the figures were read."""

    def total(self, status: str) -> int:
        return sum(n for (_, s), n in self.counts.items() if s == status)

    @property
    def oldest_queued_age_s(self) -> float:
        """Seconds the oldest queued message has waited (0 when none waits): the delivery lag."""
        if self.oldest_queued_at is None:
            return 0.0
        return max((self.now - self.oldest_queued_at).total_seconds(), 0.0)


async def outbox_figures(session: AsyncSession) -> OutboxFigures:
    """Messages by channel and status, and the oldest queued one's queue time, in one snapshot."""
    rows = (
        await session.execute(
            text(
                "SELECT coalesce(channel, :none) AS channel, status, count(*) AS n "
                "FROM messages GROUP BY 1, 2"
            ),
            {"none": NO_CHANNEL},
        )
    ).all()
    oldest, now = (
        await session.execute(
            text("SELECT min(coalesce(queued_at, created_at)), now() FROM messages WHERE status = 'queued'")
        )
    ).one()
    return OutboxFigures({(r.channel, r.status): int(r.n) for r in rows}, oldest, now)


async def reminders_sent_on(session: AsyncSession, day: date) -> int:
    """Reminders delivered on ``day`` (a Swedish calendar day)."""
    sent = await session.scalar(
        text(
            "SELECT count(*) FROM messages WHERE kind = 'reminder' AND status = 'sent' "
            "AND (sent_at AT TIME ZONE 'Europe/Stockholm')::date = :day"
        ),
        {"day": day},
    )
    return int(sent or 0)
