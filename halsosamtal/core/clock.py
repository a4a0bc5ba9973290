"""Swedish local time: what residents and centres read, and where days begin and end.

``now()`` is the service's one clock. Services ask it (never ``datetime.now`` or the database's
``now()`` for what they record), so a caller can set the instant they act at with
:func:`frozen_at`: the demo simulation drives the real services through a past year that way,
and what they record (booked at, held at, recorded at) is that instant's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

STOCKHOLM = ZoneInfo("Europe/Stockholm")

_frozen: ContextVar[datetime | None] = ContextVar("halsosamtal_clock_frozen", default=None)


def now() -> datetime:
    """The current instant (aware, UTC): the wall clock, or the instant set by :func:`frozen_at`."""
    return _instant()


def _instant() -> datetime:
    frozen = _frozen.get()
    return frozen if frozen is not None else datetime.now(UTC)


def local_today() -> date:
    """Today in Sweden."""
    return now().astimezone(STOCKHOLM).date()


@contextmanager
def frozen_at(instant: datetime) -> Iterator[datetime]:
    """Within the block (this task and those it starts), :func:`now` is ``instant``."""
    if instant.tzinfo is None:
        raise ValueError("frozen_at needs an aware time")
    token = _frozen.set(instant.astimezone(UTC))
    try:
        yield instant
    finally:
        _frozen.reset(token)


def start_of_day(day: date) -> datetime:
    """Midnight at the start of ``day`` in Sweden, as an aware time."""
    return datetime.combine(day, time(0), tzinfo=STOCKHOLM)


def end_of_day(day: date) -> datetime:
    """Midnight at the end of ``day`` in Sweden (exclusive bound)."""
    return start_of_day(day + timedelta(days=1))


def moment(as_of: date, now: datetime | None = None) -> datetime:
    """The timestamp a run for ``as_of`` writes: the current Swedish wall-clock time on that day.

    For a run for today this is simply now. A run for another day (``--as-of``) writes that
    day's date with today's time of day, so what it records (when an invitation went out, when
    the last message was) is what a run on that day would have recorded.
    """
    current = (now or _instant()).astimezone(STOCKHOLM)
    return (current + timedelta(days=(as_of - current.date()).days)).astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The start and end (exclusive) of a Swedish calendar day, as aware datetimes."""
    return start_of_day(day), end_of_day(day)


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
