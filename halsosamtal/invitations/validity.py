"""When an invitation can be used: its programme year's first day to its last valid day.

One rule for every feature that asks: booking offers and books only times in this window, and
results accept only talks held in it, so a time a resident can book is always a talk its unit
can report (and be paid for).
"""

from __future__ import annotations

from datetime import date, datetime

from halsosamtal.core import clock


def first_valid_day(year: int) -> date:
    """The first day an invitation of programme year ``year`` can be used: 1 January."""
    return date(year, 1, 1)


def window(year: int, valid_until: date) -> tuple[datetime, datetime]:
    """The first and (exclusive) last moment of the window, in Swedish local days."""
    return clock.start_of_day(first_valid_day(year)), clock.end_of_day(valid_until)


def within(day: date, year: int, valid_until: date) -> bool:
    """Whether a talk on ``day`` (Swedish local) falls in the invitation's window."""
    return first_valid_day(year) <= day <= valid_until


def describe(year: int, valid_until: date) -> str:
    return f"{first_valid_day(year).isoformat()} .. {valid_until.isoformat()}"
