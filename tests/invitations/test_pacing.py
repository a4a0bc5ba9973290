from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from halsosamtal.invitations.pacing import (
    level,
    preferred_day,
    send_day,
    week_start,
    weekly_room,
    weeks_of,
)

W = weeks_of(2027, dt.date(2026, 11, 1))


def test_preferred_day_is_the_same_day_a_month_before_the_birth_month() -> None:
    assert preferred_day(dt.date(1987, 5, 15), 2027) == dt.date(2027, 4, 15)
    assert preferred_day(dt.date(1987, 3, 31), 2027) == dt.date(2027, 2, 28)
    assert preferred_day(dt.date(1988, 3, 30), 2028) == dt.date(2028, 2, 29)
    assert preferred_day(dt.date(1987, 1, 20), 2027) == dt.date(2027, 1, 1)  # never before the year
    assert preferred_day(dt.date(1987, 12, 31), 2027) == dt.date(2027, 11, 30)


def test_weeks_cover_the_year_from_the_first_allowed_week() -> None:
    assert W[0] == dt.date(2026, 12, 28)  # the week holding 1 January 2027
    assert W[-1] == dt.date(2027, 12, 27)
    assert all(w.weekday() == 0 for w in W)
    mid = weeks_of(2027, dt.date(2027, 6, 10))
    assert mid[0] == week_start(dt.date(2027, 6, 10))
    assert send_day(W[0], 2027, dt.date(2026, 11, 1)) == dt.date(2027, 1, 1)
    assert send_day(mid[0], 2027, dt.date(2027, 6, 10)) == dt.date(2027, 6, 10)


def test_room_keeps_expected_bookings_within_capacity() -> None:
    assert weekly_room(20, Decimal("0.5")) == 40
    assert weekly_room(7, Decimal("0.3")) == 23
    assert weekly_room(0, Decimal("0.5")) == 0


def test_demand_within_room_stays_in_its_week() -> None:
    plan = level(1, {W[10]: 30, W[11]: 40}, room=40, weeks=W)
    assert [(a.preferred, a.week, a.count) for a in plan] == [(W[10], W[10], 30), (W[11], W[11], 40)]


def test_surplus_moves_to_the_nearest_weeks_with_room_earlier_first() -> None:
    plan = level(1, {W[10]: 100}, room=40, weeks=W)
    assert {a.week: a.count for a in plan} == {W[10]: 40, W[9]: 40, W[11]: 20}


def test_surplus_does_not_take_room_a_later_week_needs_for_itself() -> None:
    plan = level(1, {W[10]: 60, W[11]: 40}, room=40, weeks=W)
    weeks = {a.week: a.count for a in plan}
    assert weeks == {W[10]: 40, W[9]: 20, W[11]: 40}


def test_existing_load_takes_room_first() -> None:
    plan = level(1, {W[5]: 10}, room=40, weeks=W, existing={W[5]: 35})
    assert {a.week: a.count for a in plan} == {W[5]: 5, W[4]: 5}


def test_no_room_anywhere_still_invites_everyone_in_the_preferred_week() -> None:
    plan = level(1, {W[3]: 7}, room=0, weeks=W)
    assert [(a.week, a.count) for a in plan] == [(W[3], 7)]


@pytest.mark.parametrize("seed", range(20))
def test_levelling_keeps_every_resident_and_respects_room_when_there_is_enough(seed: int) -> None:
    import random

    rng = random.Random(seed)
    room = rng.randint(1, 30)
    demand = {w: rng.randint(0, 3 * room) for w in rng.sample(W, 12)}
    total = sum(demand.values())
    plan = level(7, demand, room=room, weeks=W)
    assert sum(a.count for a in plan) == total
    per_week: dict[dt.date, int] = {}
    for a in plan:
        per_week[a.week] = per_week.get(a.week, 0) + a.count
    if total <= room * len(W):
        assert max(per_week.values()) <= room
    by_preferred: dict[dt.date, int] = {}
    for a in plan:
        by_preferred[a.preferred] = by_preferred.get(a.preferred, 0) + a.count
    assert by_preferred == {w: n for w, n in demand.items() if n}


def test_an_unknown_preferred_week_is_an_error() -> None:
    with pytest.raises(ValueError, match="not one of the planning weeks"):
        level(1, {dt.date(2027, 1, 5): 1}, room=1, weeks=W)
