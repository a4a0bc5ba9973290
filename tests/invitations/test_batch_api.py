"""Operators start a batch through the API; the worker picks it up and runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core.settings import Settings
from halsosamtal.units.models import CareUnit
from services.worker import settings as worker_settings
from tests.conftest import run_worker_burst
from tests.invitations.test_batch import _region


async def test_plan_start_and_follow_a_batch_through_the_worker(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Callable[..., Awaitable[CareUnit]],
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, expected = await _region(sessionmaker, make_unit)
    plan = await api.get("/v1/batches/plan", headers=operator, params={"year": 2027, "as_of": "2026-12-01"})
    assert plan.status_code == 200, plan.text
    assert plan.json()["total"] == sum(expected.values())
    assert sum(line["invitations"] for line in plan.json()["lines"]) == sum(expected.values())

    once = {**operator, "Idempotency-Key": "batch-2027-1"}
    started = await api.post("/v1/batches", headers=once, json={"year": 2027, "as_of": "2026-12-01"})
    assert started.status_code == 202, started.text
    batch_id = started.json()["id"]
    assert started.headers["location"] == f"/v1/batches/{batch_id}"
    assert started.json()["status"] == "queued"
    # A retried request (the same key) answers the same batch; it does not queue a second.
    again = await api.post("/v1/batches", headers=once, json={"year": 2027, "as_of": "2026-12-01"})
    assert (again.status_code, again.json()["id"], again.headers["idempotent-replayed"]) == (
        202,
        batch_id,
        "true",
    )
    assert len((await api.get("/v1/batches", headers=operator)).json()) == 1

    monkeypatch.setattr(worker_settings, "get_settings", lambda: settings)
    ctx: dict[str, object] = {}
    await worker_settings.startup(ctx)
    try:
        from halsosamtal.invitations.jobs import start_queued_batches

        ctx["redis"] = ctx["resources"].redis  # type: ignore[attr-defined]
        assert await start_queued_batches(ctx) == 1
    finally:
        await worker_settings.shutdown(ctx)
    worker = await run_worker_burst(settings)
    assert worker.jobs_complete == 1

    status = (await api.get(f"/v1/batches/{batch_id}", headers=operator)).json()
    assert (status["status"], status["done"], status["total"], status["created"]) == (
        "done",
        sum(expected.values()),
        sum(expected.values()),
        sum(expected.values()),
    )
    listed = await api.get(
        "/v1/invitations", headers=operator, params={"year": 2027, "status": "planned", "limit": 1000}
    )
    assert len(listed.json()["items"]) == sum(expected.values())
    assert (await api.get("/v1/batches/999999", headers=operator)).status_code == 404


async def test_a_batch_names_the_year_that_has_no_programme_and_says_why_a_past_year_invites_no_one(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    for call in (
        api.post("/v1/batches", headers=operator, json={"year": 2031}),
        api.get("/v1/batches/plan", headers=operator, params={"year": 2031}),
    ):
        refused = await call
        assert (refused.status_code, refused.json()["code"]) == (409, "no-programme-year"), refused.text
        assert "2031" in refused.json()["detail"]
        assert "PUT /v1/programme-years/2031" in refused.json()["detail"]
    rules = {"target_ages": [40], "talk_rate": 1000, "reminder_days": [28], "valid_until": "2026-03-31"}
    assert (await api.put("/v1/programme-years/2025", headers=operator, json=rules)).status_code == 201
    past = await api.post("/v1/batches", headers=operator, json={"year": 2025})
    assert (past.status_code, past.json()["code"]) == (409, "programme-year-over"), past.text
    assert "would invite no one" in past.json()["detail"]
    assert (await api.get("/v1/batches", headers=operator)).json() == []
