"""Swedish local time: what residents and centres read, and where days begin and end."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def local_today() -> date:
    """Today in Sweden."""
    return datetime.now(STOCKHOLM).date()


def now() -> datetime:
    return datetime.now(UTC)


def start_of_day(day: date) -> datetime:
    """Midnight at the start of ``day`` in Sweden, as an aware time."""
    return datetime.combine(day, time(0), tzinfo=STOCKHOLM)


def end_of_day(day: date) -> datetime:
    """Midnight at the end of ``day`` in Sweden (exclusive bound)."""
    return start_of_day(day + timedelta(days=1))


def local(value: datetime) -> datetime:
    """An aware time shown in Swedish local time."""
    return value.astimezone(STOCKHOLM)


def wall_clock(day: date, at: time) -> datetime | None:
    """``day`` at ``at`` in Sweden, or None when that wall-clock time does not exist (the hour
    skipped when summer time starts)."""
    candidate = datetime.combine(day, at, tzinfo=STOCKHOLM)
    if candidate.astimezone(UTC).astimezone(STOCKHOLM).replace(tzinfo=None) != candidate.replace(tzinfo=None):
        return None
    return candidate
