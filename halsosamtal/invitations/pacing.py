"""Pacing: when each invitation is sent, so no centre gets more bookings in a week than it has
room for.

Each resident has a preferred week: the week of the same day in the month before their birth
month (so the talk can happen around the birthday), never before the year's start nor before
the week the batch is planned. Invitations go out weekly, on the week's first day. Per unit, a
week may take ``floor(weekly_capacity / expected_uptake)`` invitations (expected bookings within
capacity). Every week first keeps its own demand up to that room; then, in week order, the
surplus moves to the nearest weeks with room left (the earlier week first on a tie). Surplus
that finds no room in the rest of the year stays in its preferred week and is reported as over
capacity: every eligible resident is still invited.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal


def week_start(day: dt.date) -> dt.date:
    """Monday of the ISO week of ``day``."""
    return day - dt.timedelta(days=day.weekday())


def first_send_day(year: int, as_of: dt.date) -> dt.date:
    """The first day an invitation of ``year`` may be planned for."""
    return max(dt.date(year, 1, 1), as_of)


def weeks_of(year: int, as_of: dt.date) -> list[dt.date]:
    """Mondays of the weeks in which invitations of ``year`` can still be sent."""
    start = week_start(first_send_day(year, as_of))
    end = dt.date(year, 12, 31)
    weeks = []
    while start <= end:
        weeks.append(start)
        start += dt.timedelta(days=7)
    return weeks


def preferred_day(birth: dt.date, year: int) -> dt.date:
    """The same day of the month before the birth month (clamped to that month's length)."""
    month = birth.month - 1
    if month == 0:
        return dt.date(year, 1, 1)
    last = (dt.date(year, month + 1, 1) - dt.timedelta(days=1)).day if month < 12 else 31
    return dt.date(year, month, min(birth.day, last))


def send_day(week: dt.date, year: int, as_of: dt.date) -> dt.date:
    """The day a week's invitations go out: its Monday, or the first allowed day."""
    return max(week, first_send_day(year, as_of))


def weekly_room(weekly_capacity: int, expected_uptake: Decimal) -> int:
    """Invitations a week can take so that expected bookings stay within capacity."""
    return math.floor(Decimal(weekly_capacity) / expected_uptake)


@dataclass(frozen=True)
class Allocation:
    """``count`` residents of a unit who prefer ``preferred`` go out in week ``week``."""

    care_unit_id: int
    preferred: dt.date
    week: dt.date
    count: int


def level(
    care_unit_id: int,
    demand: Mapping[dt.date, int],
    room: int,
    weeks: list[dt.date],
    existing: Mapping[dt.date, int] | None = None,
) -> list[Allocation]:
    """Spread one unit's demand (preferred week -> residents) over ``weeks``.

    ``existing`` is load already planned in earlier runs; it takes room first. The result is
    deterministic: allocations in order of preferred week, then target week."""
    index = {w: i for i, w in enumerate(weeks)}
    for w in demand:
        if w not in index:
            raise ValueError(f"preferred week {w} is not one of the planning weeks")
    left = [room - (existing or {}).get(w, 0) for w in weeks]
    placed: dict[tuple[dt.date, dt.date], int] = {}
    surplus: list[tuple[int, int]] = []
    for w in sorted(demand):
        i, n = index[w], demand[w]
        keep = max(0, min(n, left[i]))
        if keep:
            placed[(w, w)] = keep
            left[i] -= keep
        if n - keep:
            surplus.append((i, n - keep))
    for i, n in surplus:
        for j in _nearest(i, len(weeks)):
            if n == 0:
                break
            take = min(n, left[j])
            if take > 0:
                key = (weeks[i], weeks[j])
                placed[key] = placed.get(key, 0) + take
                left[j] -= take
                n -= take
        if n:  # no room anywhere: invite anyway, in the preferred week (over capacity)
            key = (weeks[i], weeks[i])
            placed[key] = placed.get(key, 0) + n
    return [
        Allocation(care_unit_id, preferred, week, count)
        for (preferred, week), count in sorted(placed.items())
    ]


def _nearest(i: int, size: int) -> Iterable[int]:
    """Indices by distance from ``i``, the earlier first on a tie (``i`` itself excluded)."""
    for d in range(1, size):
        if i - d >= 0:
            yield i - d
        if i + d < size:
            yield i + d
