"""The demo region's year in progress (``demo-data --simulate``): made by the real services, the
same for the same seed and day, every report chart with data, and every invariant kept.

Two throw-away databases of their own (the harness's is emptied after each test): the same
simulation runs into both, their content is compared by natural keys, and the first is then
read by the assertions below."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.cli.app import app
from halsosamtal.core import clock, infra, migrations
from halsosamtal.core.database import create_engine, make_sessionmaker, session_scope
from halsosamtal.core.settings import Settings, get_settings
from halsosamtal.demo.digest import content_digests
from halsosamtal.demo.simulate import SimulationSummary, fast_commits, simulate
from halsosamtal.reports.participation import participation
from tests.reports.conftest import run_cli
from tests.reports.test_html import MEASURE, _render

# The harness empties its own database after each test through its engine: have it up front.
pytestmark = pytest.mark.usefixtures("engine")

SEED = 7
RESIDENTS = 8_000
CARE_UNITS = 5
AS_OF = dt.date(2026, 11, 20)
YEAR = 2026
# Every chart of the summary (a DeSO chart is drawn only when asked for: --group-by deso).
CHARTS = (
    "chart-funnel",
    "chart-unit",
    "chart-sex",
    "chart-age",
    "chart-area",
    "chart-cni",
    "chart-habits",
    "chart-score2",
    "chart-reimbursement",
)


class Simulated:
    def __init__(self, url: str, sessionmaker: async_sessionmaker[AsyncSession], summary: SimulationSummary):
        self.url, self.sessionmaker, self.summary = url, sessionmaker, summary


async def _simulate_into(
    url: str, settings: Settings, letters: Path
) -> tuple[SimulationSummary, dict[str, str]]:
    await infra.ensure_database(url)
    await asyncio.to_thread(migrations.upgrade, url)
    engine = create_engine(url, pool_size=3, max_overflow=2, application_name="halsosamtal-tests-demo")
    fast_commits(engine)
    try:
        summary = await simulate(
            make_sessionmaker(engine),
            settings.model_copy(update={"database_url": url, "letters_dir": letters}),
            seed=SEED,
            residents=RESIDENTS,
            care_units=CARE_UNITS,
            as_of=AS_OF,
        )
        async with session_scope(make_sessionmaker(engine)) as session:
            return summary, await content_digests(session)
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
async def twice(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Any]]:
    """The same simulation into two databases, one after the other."""
    urls = [f"{settings.database_url}_demo_{n}" for n in ("a", "b")]
    try:
        first = await _simulate_into(urls[0], settings, tmp_path_factory.mktemp("letters-a"))
        second = await _simulate_into(urls[1], settings, tmp_path_factory.mktemp("letters-b"))
        yield {"url": urls[0], "summary": first[0], "digests": (first[1], second[1])}
    finally:
        for url in urls:
            await infra.drop_database(url)


@pytest.fixture
async def demo(twice: dict[str, Any]) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(twice["url"], pool_size=2, max_overflow=0)
    yield make_sessionmaker(engine)
    await engine.dispose()


@pytest.fixture
def demo_cli(twice: dict[str, Any], monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[None]:
    monkeypatch.setenv("HALSOSAMTAL_DATABASE_URL", twice["url"])
    monkeypatch.setenv("HALSOSAMTAL_REDIS_URL", settings.redis_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


async def test_the_same_seed_and_day_give_the_same_content(twice: dict[str, Any]) -> None:
    first, second = twice["digests"]
    assert first == second
    assert all(not value.startswith("0 rows") for value in first.values()), first


async def test_the_year_has_every_kind_of_event(twice: dict[str, Any]) -> None:
    counts = twice["summary"].counts
    for what in (
        "booked",
        "declined",
        "no-shows",
        "reminders",
        "results",
        "results amended",
        "results retracted",
    ):
        assert counts.get(what, 0) > 0, (what, counts)
    assert counts["months closed"] == AS_OF.month - 1  # each month closed on the 8th of the next


async def test_the_first_report_has_data_in_every_chart(
    demo_cli: None, chromium: Path, tmp_path: Path
) -> None:
    report = tmp_path / "summary.html"
    code, out = await run_cli(app, "report", "summary", "--year", str(YEAR), "--out", str(report))
    assert code == 0, out
    page = tmp_path / "measured.html"
    page.write_text(
        report.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"), encoding="utf-8"
    )
    dom = await asyncio.to_thread(_render, chromium, page, tmp_path / "profile")
    found = re.search(r'data-measured="([^"]*)"', dom)
    assert found, dom[:2000]
    charts: dict[str, dict[str, Any]] = {c["id"]: c for c in json.loads(html.unescape(found.group(1)))}
    assert set(charts) == set(CHARTS)
    for chart_id, chart in charts.items():
        assert chart["bars"] >= 2, (chart_id, chart)
        assert chart["drawn"] == chart["bars"], (chart_id, chart)


async def test_the_funnel_narrows_and_every_figure_is_there(demo: async_sessionmaker[AsyncSession]) -> None:
    async with session_scope(demo) as session:
        report = await participation(session, YEAR)
    figures = report.total.counts
    total = {name: getattr(figures, name).value for name in ("cohort", "invited", "booked", "attended")}
    total |= {name: getattr(figures, name).value for name in ("completed", "reminded", "declined", "no_show")}
    assert all(isinstance(value, int) for value in total.values()), total  # none suppressed
    assert (
        total["cohort"] >= total["invited"] >= total["booked"] >= total["attended"] >= total["completed"] > 0
    )
    assert total["reminded"] > 0
    assert total["declined"] > 0
    assert total["no_show"] > 0
    assert total["attended"] > total["completed"]  # some talks wait for their result


async def test_every_time_the_services_recorded_is_in_the_simulated_year(
    demo: async_sessionmaker[AsyncSession],
) -> None:
    end = clock.start_of_day(AS_OF) + dt.timedelta(hours=7)
    start = clock.start_of_day(dt.date(YEAR, 1, 1))
    checks = {
        "invitation_events": "SELECT min(at), max(at) FROM invitation_events",
        "appointments": "SELECT min(booked_at), max(greatest(booked_at, updated_at)) FROM appointments",
        "appointment_events": "SELECT min(at), max(at) FROM appointment_events",
        "result_events": "SELECT min(at), max(at) FROM result_events",
        "result_versions": "SELECT min(recorded_at), max(recorded_at) FROM result_versions",
        "messages": "SELECT min(created_at), max(coalesce(sent_at, queued_at, created_at)) FROM messages",
        "closings": "SELECT min(closed_at), max(closed_at) FROM reimbursement_closings",
    }
    async with session_scope(demo) as session:
        for name, query in checks.items():
            low, high = (await session.execute(text(query))).one()
            assert start <= low <= high <= end, (name, low, high)
        # Causality: booked before the talk, the result after it, recorded after it was held.
        assert not await session.scalar(
            text(
                "SELECT count(*) FROM appointments a JOIN slots s ON s.id = a.slot_id "
                "WHERE a.booked_at > s.starts_at - interval '7 days'"
            )
        )
        assert not await session.scalar(
            text("SELECT count(*) FROM result_versions WHERE recorded_at < held_at")
        )
        assert not await session.scalar(
            text("SELECT count(*) FROM invitations WHERE sent_at IS NOT NULL AND sent_at < created_at")
        )
        # A completed invitation has its result; an attended appointment for each result held at one.
        assert not await session.scalar(
            text(
                "SELECT count(*) FROM invitations i WHERE i.status = 'completed' "
                "AND NOT EXISTS (SELECT 1 FROM results r "
                "WHERE r.invitation_id = i.id AND r.status = 'completed')"
            )
        )
        assert not await session.scalar(
            text(
                "SELECT count(*) FROM result_versions v JOIN results r ON r.id = v.result_id "
                "JOIN appointments a ON a.id = v.appointment_id WHERE r.status = 'completed' "
                "AND a.status <> 'attended'"
            )
        )


async def test_the_statement_has_a_reversal_and_closed_months_that_still_add_up(
    demo_cli: None,
) -> None:
    code, out = await run_cli(app, "report", "reimbursement", "--year", str(YEAR), "--format", "json")
    assert code == 0, out
    statement = json.loads(out)
    kinds = {line["kind"] for line in statement["lines"]}
    assert {"talk", "reversal"} <= kinds, kinds
    closed = [m for m in statement["months"] if m["closed_at"]]
    assert len(closed) == AS_OF.month - 1
    assert all(m["unchanged_since_closed"] for m in closed)
