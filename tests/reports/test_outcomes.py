"""Health outcomes equal a recount of the completed results' current versions; suppression holds
within groups (e.g. "all but two smoke") as well as across them."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.reports.export import outcome_columns
from halsosamtal.reports.outcomes import DIMENSIONS, outcomes
from halsosamtal.reports.schemas import OutcomeGroup, OutcomesReport
from halsosamtal.reports.scope import Scope
from tests.reports import expected
from tests.reports.region import Region

SM = async_sessionmaker[AsyncSession]
KEYS = {"sex": "sex", "age": "age_key", "unit": "unit_key"}


def _figures(group: OutcomeGroup) -> dict[str, Any]:
    out: dict[str, Any] = {"completed": group.completed.value}
    for habit, h in group.habits.items():
        out[f"{habit}_unhealthy"] = h.unhealthy.count.value
        for action, pair in h.actions.items():
            out[f"{habit}_{action}"] = pair.count.value
    out["any_unhealthy"] = group.any_unhealthy.count.value
    for kind, pair in group.referrals.items():
        out[f"referral_{kind}"] = pair.count.value
    for category, pair in group.score2.items():
        out[f"score2_{category}"] = pair.count.value
    out["bmi_measured"] = group.bmi.measured.value
    out["bmi_mean"] = group.bmi.mean.value
    return out


def _expected(region: Region, units: set[int] | None = None) -> dict[str, dict[str | None, dict[str, Any]]]:
    rows = expected.outcome_rows(region, units)
    out: dict[str, dict[str | None, dict[str, Any]]] = {"total": {None: expected.outcome_figures(rows)}}
    for dimension, column in KEYS.items():
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            grouped[row[column]].append(row)
        out[dimension] = {k: expected.outcome_figures(v) for k, v in grouped.items()}
    return out


async def test_every_figure_equals_a_recount_of_the_current_versions(
    sessionmaker: SM, region: Region
) -> None:
    async with sessionmaker() as s:
        report = await outcomes(s, region.year, group_by=DIMENSIONS, threshold=1)
    want = _expected(region)
    assert _figures(report.total) == want["total"][None]
    assert report.total.completed.value == sum(1 for r in region.results if r["status"] == "completed"), (
        "retracted results are not counted; one completed again is"
    )
    for dimension in DIMENSIONS:
        assert {g.key: _figures(g) for g in report.groups[dimension]} == want[dimension], dimension
    # Shares are of the group's completed talks.
    for group in [report.total, *report.groups["sex"]]:
        n = int(group.completed.value or 0)
        for habit in group.habits.values():
            assert habit.unhealthy.share.value == expected.share(int(habit.unhealthy.count.value or 0), n)
        for pair in group.score2.values():
            assert pair.share.value == expected.share(int(pair.count.value or 0), n)


async def test_amendments_count_with_their_latest_version(sessionmaker: SM, region: Region) -> None:
    amended = [r for r in region.results if r["current_version"] > 1 and r["status"] == "completed"]
    assert amended, "the region must have amended results"
    versions = {(v["result_id"], v["version"]): v for v in region.versions}
    differs = [
        r
        for r in amended
        if versions[(r["id"], 1)]["bmi"] != versions[(r["id"], r["current_version"])]["bmi"]
    ]
    assert differs, "an amendment must change something the report shows"
    async with sessionmaker() as s:
        report = await outcomes(s, region.year, group_by=["unit"], threshold=1)
    first_versions = expected.outcome_figures(
        [versions[(r["id"], 1)] for r in region.results if r["status"] == "completed"]
    )
    assert report.total.bmi.mean.value == _expected(region)["total"][None]["bmi_mean"]
    assert _figures(report.total) != first_versions


async def test_an_ehr_scope_counts_its_units_results_only(sessionmaker: SM, region: Region) -> None:
    unit = region.units[0]
    async with sessionmaker() as s:
        report = await outcomes(
            s, region.year, group_by=["unit"], scope=Scope([unit["id"]], [unit["hsa_id"]]), threshold=1
        )
    assert [g.key for g in report.groups["unit"]] == [unit["hsa_id"]]
    assert _figures(report.total) == _expected(region, {unit["id"]})["total"][None]


def _groups(report: OutcomesReport) -> list[tuple[str, OutcomeGroup]]:
    return [("total", report.total), *((d, g) for d, gs in report.groups.items() for g in gs)]


async def test_small_cells_and_their_complements_are_suppressed(sessionmaker: SM, region: Region) -> None:
    async with sessionmaker() as s:
        report = await outcomes(s, region.year, group_by=DIMENSIONS, threshold=5)
    want = _expected(region)
    for dimension, group in _groups(report):
        truth = want[dimension][group.key]
        n = truth["completed"]
        shown = dict(outcome_columns(group))
        for name, value in _figures(group).items():
            if name == "bmi_mean":
                continue
            if value is None:
                assert shown[name] in ("<5", ".."), (dimension, group.key, name)
                assert shown[name] == ".." or 1 <= truth[name] < 5
                continue
            assert value == truth[name]
            assert not 1 <= value < 5
        # "All but a few" is as telling as "a few": an unhealthy count whose complement is small
        # is not shown while the completed count is.
        for habit in group.habits:
            unhealthy = group.habits[habit].unhealthy.count
            if group.completed.value is not None and unhealthy.value is not None:
                assert not 1 <= n - truth[f"{habit}_unhealthy"] < 5
        if group.bmi.measured.suppressed:
            assert group.bmi.mean.suppressed
            assert group.bmi.mean.value is None
    # Within each group, no partition (action levels, SCORE2 categories) has exactly one
    # suppressed member under a shown total.
    for _, group in _groups(report):
        if group.completed.suppressed:
            continue
        partitions = [list(h.actions.values()) for h in group.habits.values()] + [list(group.score2.values())]
        for members in partitions:
            assert sum(p.count.suppressed for p in members) != 1
