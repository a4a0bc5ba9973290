"""The participation funnel equals a recount from the raw rows, per breakdown; small cells are
suppressed and cannot be recovered by subtraction."""

from __future__ import annotations

from datetime import UTC
from decimal import Decimal

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.reports.models import DesoCni
from halsosamtal.reports.participation import DIMENSIONS, participation
from halsosamtal.reports.schemas import ParticipationGroup, ParticipationReport
from halsosamtal.reports.scope import Scope
from tests.reports import expected
from tests.reports.region import STOCKHOLM, Region

SM = async_sessionmaker[AsyncSession]


async def _with_cni(sm: SM, region: Region) -> dict[str, Decimal]:
    """A CNI for every DeSO area in the region but one (its residents are 'unknown'), with a tie."""
    areas = sorted({r["deso"] for r in region.residents if r["deso"]})
    cni = {d: Decimal(i % 7) / 4 + Decimal("0.5") for i, d in enumerate(areas[1:])}
    async with sm() as s, s.begin():
        await s.execute(insert(DesoCni), [{"deso": d, "cni": c} for d, c in cni.items()])
    return cni


def _counts(group: ParticipationGroup) -> dict[str, int | float | None]:
    return {name: getattr(group.counts, name).value for name in expected.FUNNEL}


async def test_every_figure_equals_a_recount_from_the_raw_rows(sessionmaker: SM, region: Region) -> None:
    cni = await _with_cni(sessionmaker, region)
    async with sessionmaker() as s:
        report = await participation(s, region.year, group_by=DIMENSIONS, threshold=1)
    want = expected.funnel(region, cni=cni)

    assert _counts(report.total) == want["total"][None]
    assert report.total.counts.cohort.value == len(region.invitations)
    for dimension in DIMENSIONS:
        got = {g.key: _counts(g) for g in report.groups[dimension]}
        assert got == {k: v for k, v in want[dimension].items()}, dimension
    for group in [report.total, *(g for gs in report.groups.values() for g in gs)]:
        counts = {name: getattr(group.counts, name).value for name in expected.FUNNEL}
        for name in expected.FUNNEL[1:]:
            assert getattr(group.rates, name).value == expected.share(counts[name], counts["cohort"])
        assert group.rates.participation.value == expected.share(counts["completed"], counts["invited"])
        assert not any(getattr(group.counts, n).suppressed for n in expected.FUNNEL)


async def test_groups_are_labelled_and_ordered(sessionmaker: SM, region: Region) -> None:
    await _with_cni(sessionmaker, region)
    async with sessionmaker() as s:
        report = await participation(
            s, region.year, group_by=["unit", "age", "sex", "municipality", "cni_quintile"], threshold=1
        )
    units = sorted((u for u in region.units if u["participating"]), key=lambda u: u["hsa_id"])
    assert [(g.key, g.label) for g in report.groups["unit"]] == [(u["hsa_id"], u["name"]) for u in units]
    assert [g.key for g in report.groups["age"]] == ["40", "50", "60"]
    assert [(g.key, g.label) for g in report.groups["sex"]] == [("F", "female"), ("M", "male")]
    # A municipality is named (SCB's list); its code stays the key.
    assert [(g.key, g.label) for g in report.groups["municipality"]] == [
        ("1380", "Halmstad"),
        ("1381", "Laholm"),
        ("1382", "Falkenberg"),
        (None, "unknown"),
    ]
    quintiles = [(g.key, g.label) for g in report.groups["cni_quintile"]]
    assert quintiles[-1] == (None, "unknown")
    assert [k for k, _ in quintiles[:-1]] == sorted((k for k, _ in quintiles[:-1]), key=lambda k: int(k or 0))


async def test_an_invitation_counts_for_the_unit_listed_at_on_the_swedish_day_it_was_sent(
    sessionmaker: SM, region: Region
) -> None:
    moved = [i for i in region.invitations if expected.attributed_unit(region, i) != i["care_unit_id"]]
    assert moved, "the region must have residents who moved after their invitation was sent"
    at_midnight = [
        i
        for i in region.invitations
        if i["sent_at"] is not None and i["sent_at"].astimezone(STOCKHOLM).hour == 0
    ]
    assert at_midnight, "the region must have invitations sent just after Swedish midnight"
    for invitation in at_midnight:
        # Sent on the move day, Swedish time, which is the day before in UTC: the new unit.
        assert (
            invitation["sent_at"].astimezone(STOCKHOLM).date() != invitation["sent_at"].astimezone(UTC).date()
        )
        assert expected.attributed_unit(region, invitation) == invitation["care_unit_id"]
    unit = moved[0]
    old = expected.attributed_unit(region, unit)
    async with sessionmaker() as s:
        report = await participation(
            s, region.year, group_by=["unit"], scope=Scope([old], ["x"]), threshold=1
        )
    assert report.total.counts.cohort.value == expected.funnel(region, units={old})["total"][None]["cohort"]


def _all_groups(report: ParticipationReport) -> list[tuple[str, ParticipationGroup]]:
    return [("total", report.total), *((d, g) for d, gs in report.groups.items() for g in gs)]


async def test_small_cells_are_suppressed_and_cannot_be_recovered_by_subtraction(
    sessionmaker: SM, region: Region
) -> None:
    cni = await _with_cni(sessionmaker, region)
    async with sessionmaker() as s:
        report = await participation(s, region.year, group_by=DIMENSIONS, threshold=5)
    want = expected.funnel(region, cni=cni)
    small = secondary = 0
    for dimension, group in _all_groups(report):
        truth = want[dimension][group.key]
        for name in expected.FUNNEL:
            figure = getattr(group.counts, name)
            if not figure.suppressed:
                assert figure.value == truth[name]
                assert figure.shown == str(truth[name])
                assert not 1 <= truth[name] < 5, (dimension, group.key, name)
            elif figure.shown == "<5":
                assert 1 <= truth[name] < 5
                assert figure.value is None
                small += 1
            else:
                assert figure.shown == ".."
                assert figure.value is None
                secondary += 1
            rate = getattr(group.rates, name, None)
            if rate is not None and (figure.suppressed or group.counts.cohort.suppressed):
                assert rate.suppressed
                assert rate.value is None
                assert rate.shown in ("<5", "..")
        if group.counts.completed.suppressed or group.counts.invited.suppressed:
            assert group.rates.participation.suppressed
    assert small, "the region must have small cells"
    assert secondary, "the region must have cells suppressed to protect small ones"
    # No column has exactly one suppressed group under a shown total: subtraction gives nothing.
    for dimension, groups in report.groups.items():
        for name in expected.FUNNEL:
            cells = [getattr(g.counts, name) for g in groups] + [getattr(report.total.counts, name)]
            assert sum(c.suppressed for c in cells) != 1, (dimension, name)


async def test_no_invitations_give_zeros_not_an_error(sessionmaker: SM) -> None:
    async with sessionmaker() as s:
        report = await participation(s, 2030, group_by=["unit", "sex"])
    assert report.total.counts.cohort.value == 0
    assert report.total.rates.invited.value is None
    assert report.groups == {"unit": [], "sex": []}
