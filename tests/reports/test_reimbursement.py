"""The reimbursement statement equals the written rules applied to the raw result events; a
closed month never changes: a later retraction is a reversal in its own month."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.programmes.models import ProgrammeYearRevision
from halsosamtal.reports import reimbursement
from halsosamtal.reports.reimbursement import EarlierMonthOpen, MonthClosed, MonthNotEnded
from halsosamtal.reports.schemas import ReimbursementStatement
from halsosamtal.reports.scope import Scope
from halsosamtal.results.models import Result, ResultEvent
from tests.reports import expected
from tests.reports.expected import Closing
from tests.reports.region import YEAR, Region, local

SM = async_sessionmaker[AsyncSession]


async def _statement(
    sm: SM, year: int, month: int | None = None, scope: Scope | None = None
) -> ReimbursementStatement:
    async with sm() as s:
        return await reimbursement.statement(s, year, month, scope=scope or Scope())


async def _close(sm: SM, month: int, *, year: int = YEAR, at: dt.datetime | None = None) -> Closing:
    first = dt.date(year, month, 1)
    at = at or local(dt.date(year + month // 12, month % 12 + 1, 3))
    async with sm() as s, s.begin():
        await reimbursement.close_month(s, year, month, actor="test", at=at)
        last = await s.scalar(
            text("SELECT last_event_id FROM reimbursement_closings WHERE month = :m"), {"m": first}
        )
    return Closing(first, at, int(last))


async def _event(sm: SM, region: Region, result_id: int, kind: str, at: dt.datetime) -> int:
    """Record a result event now (a new id after everything before), as the results service does."""
    async with sm() as s, s.begin():
        event = ResultEvent(result_id=result_id, kind=kind, version=1, at=at, actor="ehr")
        s.add(event)
        await s.execute(
            update(Result)
            .where(Result.id == result_id)
            .values(status="retracted" if kind == "retracted" else "completed")
        )
        await s.flush()
        region.events.append({"id": event.id, "result_id": result_id, "kind": kind, "version": 1, "at": at})
        for r in region.results:
            if r["id"] == result_id:
                r["status"] = "retracted" if kind == "retracted" else "completed"
        return int(event.id)


def _key(line: dict[str, Any]) -> tuple[Any, ...]:
    return (
        line["id"],
        f"{line['month']:%Y-%m}",
        line["care_unit"],
        line["kind"],
        line["quantity"],
        line["amount"],
    )


def _lines(statement: ReimbursementStatement) -> set[tuple[Any, ...]]:
    return {(ln.id, ln.month, ln.care_unit, ln.kind, ln.quantity, ln.amount) for ln in statement.lines}


def _want(region: Region, closings: list[Closing], year: int, **rates: Decimal) -> set[tuple[Any, ...]]:
    return {
        _key(ln) for ln in expected.statement_lines(region, closings, **rates) if ln["month"].year == year
    }


async def test_lines_and_totals_equal_the_rules_applied_to_the_raw_events(sm: SM, region: Region) -> None:
    for year in (YEAR, YEAR + 1):
        statement = await _statement(sm, year)
        assert _lines(statement) == _want(region, [], year), year
        # Totals per unit and month, per month, per unit and in all are the sums of the lines.
        sums: dict[tuple[str | None, str | None], tuple[int, Decimal]] = {}
        for ln in statement.lines:
            for key in ((ln.month, ln.care_unit), (ln.month, None), (None, ln.care_unit), (None, None)):
                n, amount = sums.get(key, (0, Decimal(0)))
                sums[key] = (n + 1, amount + ln.amount)
        assert {(t.month, t.care_unit): (t.lines, t.amount) for t in statement.totals} == sums
    january = await _statement(sm, YEAR, 1)
    grants = [ln for ln in january.lines if ln.kind == "start_grant"]
    assert grants
    assert all(ln.amount == ln.quantity * Decimal("800.00") for ln in grants)
    assert {ln.care_unit for ln in grants} <= {u["hsa_id"] for u in region.units if u["participating"]}
    retracted = [e for e in region.events if e["kind"] == "retracted"]
    assert retracted, "the region has retractions; with no month closed they void their talks"
    assert not any(ln.kind == "reversal" for ln in (await _statement(sm, YEAR)).lines)


async def test_a_retraction_after_the_month_was_closed_is_a_reversal_in_its_own_month(
    sm: SM, region: Region
) -> None:
    closings = [await _close(sm, month) for month in (1, 2, 3, 4)]
    march_before = (await _statement(sm, YEAR, 3)).model_dump_json()
    whole_before = await _statement(sm, YEAR)
    assert [m.unchanged_since_closed for m in whole_before.months[:4]] == [True] * 4
    assert whole_before.months[4].closed_at is None

    # A talk completed in March, not retracted: retracted in May, after March was closed.
    talk = next(
        e
        for e in region.events
        if e["kind"] == "completed"
        and expected.month_of(e["at"]) == dt.date(YEAR, 3, 1)
        and not any(x["result_id"] == e["result_id"] and x["id"] > e["id"] for x in region.events)
    )
    reversal_id = await _event(sm, region, talk["result_id"], "retracted", local(dt.date(YEAR, 5, 10)))

    assert (await _statement(sm, YEAR, 3)).model_dump_json() == march_before, "a closed month never changes"
    may = await _statement(sm, YEAR, 5)
    reversal = next(ln for ln in may.lines if ln.id == f"reversal-{reversal_id}")
    assert (reversal.kind, reversal.reverses, reversal.quantity, reversal.amount) == (
        "reversal",
        f"talk-{talk['id']}",
        -1,
        Decimal("-900.00"),
    )
    assert reversal.care_unit == next(
        u["hsa_id"]
        for u in region.units
        for r in region.results
        if r["id"] == talk["result_id"] and u["id"] == r["care_unit_id"]
    )
    assert _lines(await _statement(sm, YEAR)) == _want(region, closings, YEAR)
    # The same result posted again in June is a new talk line in June.
    again = await _event(sm, region, talk["result_id"], "completed", local(dt.date(YEAR, 6, 2)))
    assert f"talk-{again}" in {ln.id for ln in (await _statement(sm, YEAR, 6)).lines}
    assert _lines(await _statement(sm, YEAR)) == _want(region, closings, YEAR)
    months = (await _statement(sm, YEAR)).months
    assert [m.unchanged_since_closed for m in months[:4]] == [True] * 4


async def test_a_retraction_while_the_month_is_open_voids_the_line(sm: SM, region: Region) -> None:
    closings = [await _close(sm, month) for month in (1, 2)]
    june = [
        e
        for e in region.events
        if e["kind"] == "completed"
        and expected.month_of(e["at"]) == dt.date(YEAR, 6, 1)
        and not any(x["result_id"] == e["result_id"] and x["id"] > e["id"] for x in region.events)
    ]
    same_month, later_month = june[0], june[1]
    assert f"talk-{same_month['id']}" in {ln.id for ln in (await _statement(sm, YEAR, 6)).lines}
    first = await _event(sm, region, same_month["result_id"], "retracted", local(dt.date(YEAR, 6, 28)))
    second = await _event(sm, region, later_month["result_id"], "retracted", local(dt.date(YEAR, 8, 5)))
    june_lines = {ln.id for ln in (await _statement(sm, YEAR, 6)).lines}
    assert f"talk-{same_month['id']}" not in june_lines
    assert f"talk-{later_month['id']}" not in june_lines, "June is open: its line is void, not reversed"
    whole = await _statement(sm, YEAR)
    assert not {f"reversal-{first}", f"reversal-{second}"} & {ln.id for ln in whole.lines}
    assert _lines(whole) == _want(region, closings, YEAR)


async def test_an_event_recorded_after_its_month_was_closed_counts_in_the_month_of_the_close(
    sm: SM, region: Region
) -> None:
    """A result event dated in a closed month (say, from a transaction that began in March and
    was recorded after March was closed on 3 April) cannot enter it: it is in the first month
    that was still open when it was recorded."""
    closings = [await _close(sm, month) for month in (1, 2, 3)]
    closed = [(await _statement(sm, YEAR, m)).model_dump_json() for m in (1, 2, 3)]
    talk = next(
        e
        for e in region.events
        if e["kind"] == "completed"
        and expected.month_of(e["at"]) == dt.date(YEAR, 2, 1)
        and not any(x["result_id"] == e["result_id"] and x["id"] > e["id"] for x in region.events)
    )
    retracted = next(r for r in region.results if r["status"] == "retracted")
    late_retraction = await _event(
        sm, region, talk["result_id"], "retracted", local(dt.date(YEAR, 3, 31), 23, 50)
    )
    # Dated in February, recorded after February and March were closed: April.
    late_talk = await _event(sm, region, retracted["id"], "completed", local(dt.date(YEAR, 2, 15)))

    assert [(await _statement(sm, YEAR, m)).model_dump_json() for m in (1, 2, 3)] == closed
    april = {ln.id: ln for ln in (await _statement(sm, YEAR, 4)).lines}
    assert april[f"reversal-{late_retraction}"].reverses == f"talk-{talk['id']}"
    assert april[f"talk-{late_talk}"].month == f"{YEAR}-04"
    assert _lines(await _statement(sm, YEAR)) == _want(region, closings, YEAR)


async def test_a_rate_changed_after_a_close_applies_to_open_months_only(sm: SM, region: Region) -> None:
    rules = {"target_ages": [40, 50, 60], "talk_rate": "900.00", "start_grant": "800.00"}
    async with sm() as s, s.begin():
        s.add(
            ProgrammeYearRevision(
                year=YEAR, changed_at=local(dt.date(YEAR - 1, 11, 1)), changed_by="op", rules=rules
            )
        )
    closings = [await _close(sm, month) for month in (1, 2, 3)]
    closed = [(await _statement(sm, YEAR, m)).model_dump_json() for m in (1, 2, 3)]
    async with sm() as s, s.begin():
        s.add(
            ProgrammeYearRevision(
                year=YEAR,
                changed_at=local(dt.date(YEAR, 4, 15)),
                changed_by="op",
                rules={**rules, "talk_rate": "1000.00"},
            )
        )
        await s.execute(text("UPDATE programme_years SET talk_rate = 1000 WHERE year = :y"), {"y": YEAR})
    assert [(await _statement(sm, YEAR, m)).model_dump_json() for m in (1, 2, 3)] == closed
    april = await _statement(sm, YEAR, 4)
    assert {ln.unit_amount for ln in april.lines if ln.kind == "talk"} == {Decimal("1000.00")}
    whole = await _statement(sm, YEAR)
    old = {ln for ln in _want(region, closings, YEAR) if ln[1] <= f"{YEAR}-03"}
    new = {ln for ln in _want(region, closings, YEAR, rate=Decimal("1000.00")) if ln[1] > f"{YEAR}-03"}
    assert _lines(whole) == old | new


async def test_closing_rules(sm: SM, region: Region) -> None:
    with pytest.raises(MonthNotEnded):
        await _close(sm, 1, at=local(dt.date(YEAR, 1, 31), 23, 59))
    with pytest.raises(EarlierMonthOpen) as earlier:
        await _close(sm, 2)
    assert "close 2025-01 first" in earlier.value.detail
    await _close(sm, 1)
    with pytest.raises(MonthClosed):
        await _close(sm, 1)
    closed = await _close(sm, 2)
    assert closed.month == dt.date(YEAR, 2, 1)


async def test_an_ehr_scope_sees_its_own_lines_only(sm: SM, region: Region) -> None:
    await _close(sm, 1)
    unit = region.units[1]
    statement = await _statement(sm, YEAR, scope=Scope([unit["id"]], [unit["hsa_id"]]))
    assert statement.lines
    assert {ln.care_unit for ln in statement.lines} == {unit["hsa_id"]}
    assert _lines(statement) == {ln for ln in _want(region, [], YEAR) if ln[2] == unit["hsa_id"]}
    assert statement.months[0].unchanged_since_closed is None, "checked only on the whole month"


@pytest.fixture
def sm(sessionmaker: SM) -> SM:
    return sessionmaker
