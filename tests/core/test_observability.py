"""What operations see of the API: /metrics by route template, one access line per request,
JSON log lines with every field masked, and GET /v1/status as the database and Redis hold it."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request

from halsosamtal.core.logging import JsonFormatter, LogLines, RedactPersonalNumbers
from halsosamtal.core.metrics import route_template, status_class
from halsosamtal.core.runtime import Resources, heartbeat_key
from halsosamtal.core.settings import Settings
from services.api.metrics import check_scraper
from tests.conftest import KeyMaker
from tests.messaging.factories import execute, fetch, make_invitation, make_year, resident

PNR = "19880320-0016"


def _samples(text: str, name: str) -> dict[str, float]:
    """``{labels: value}`` of one metric in the Prometheus text format."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


# --- /metrics ------------------------------------------------------------------------------------


async def test_requests_are_counted_by_route_template_never_by_their_ids(
    api: httpx.AsyncClient, operator: dict[str, str]
) -> None:
    before = (await api.get("/metrics")).text
    for _ in range(3):
        assert (await api.get("/v1/batches/987654", headers=operator)).status_code == 404
    assert (await api.get("/v1/nowhere/19880320-0016", headers=operator)).status_code == 404
    scraped = await api.get("/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    key = 'method="GET",route="/v1/batches/{batch_id}",status="4xx"'
    counts_before = _samples(before, "halsosamtal_http_requests_total")
    counts = _samples(scraped.text, "halsosamtal_http_requests_total")
    assert counts[key] - counts_before.get(key, 0) == 3
    assert 'method="GET",route="unmatched",status="4xx"' in counts
    durations = _samples(scraped.text, "halsosamtal_http_request_duration_seconds_count")
    assert durations[key] >= 3
    # No label anywhere carries an id or a personal number.
    assert "987654" not in scraped.text
    assert "19880320" not in scraped.text


async def test_metrics_answer_only_the_machine_itself_without_a_token(app: Any) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as remote:
        refused = await remote.get("/metrics")
    assert refused.status_code == 403
    assert "HALSOSAMTAL_METRICS_TOKEN" in refused.json()["detail"]


def _request(client: str, authorization: str | None = None) -> Request:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    return Request(
        {"type": "http", "method": "GET", "path": "/metrics", "headers": headers, "client": (client, 1)}
    )


def test_with_a_token_metrics_ask_every_scraper_for_it(settings: Settings) -> None:
    from halsosamtal.core.errors import Unauthenticated

    guarded = Settings(**{**settings.model_dump(exclude={"metrics_token"}), "metrics_token": "s3cret-token"})
    check_scraper(_request("203.0.113.7", "Bearer s3cret-token"), guarded)
    for wrong in (None, "Bearer nope", "Basic s3cret-token"):
        with pytest.raises(Unauthenticated):
            check_scraper(_request("127.0.0.1", wrong), guarded)


def test_route_templates_keep_the_prefix_but_no_values() -> None:
    class Route:
        path_format = "/batches/{batch_id}"

    scope = {"route": Route(), "path": "/v1/batches/17", "path_params": {"batch_id": "17"}}
    assert route_template(scope) == "/v1/batches/{batch_id}"
    assert route_template({"path": "/v1/batches/17"}) == "unmatched"
    assert (status_class(204), status_class(503)) == ("2xx", "5xx")


# --- Logs ----------------------------------------------------------------------------------------


async def test_each_request_writes_one_access_line_with_route_status_client_and_duration(
    api: httpx.AsyncClient, make_key: KeyMaker, caplog: pytest.LogCaptureFixture
) -> None:
    headers = await make_key("operator", name="access-line-op")
    with caplog.at_level(logging.INFO, logger="halsosamtal.access"):
        response = await api.get("/v1/batches/424242", headers={**headers, "X-Request-ID": "req-access-1"})
    lines = [r for r in caplog.records if r.name == "halsosamtal.access"]
    assert len(lines) == 1
    line: Any = lines[0]
    assert line.levelno == logging.INFO
    assert (line.request_id, line.route, line.status, line.client) == (
        "req-access-1",
        "/v1/batches/{batch_id}",
        response.status_code,
        "access-line-op",
    )
    assert line.duration_ms >= 0


def _record(message: str, *args: Any, exc: bool = False, **extra: Any) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"failed on {PNR}")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.getLogger("halsosamtal.test").makeRecord(
        "halsosamtal.test",
        logging.ERROR if exc else logging.INFO,
        "f",
        1,
        message,
        args,
        exc_info,
        extra=extra,
    )
    RedactPersonalNumbers().filter(record)
    return record


def test_a_json_line_is_one_object_with_every_field_masked() -> None:
    record = _record(
        "looked up %s", PNR, exc=True, request_id="r-1", client=f"client {PNR}", route="/v1/x", status=500,
        duration_ms=12.5, extra_field=198803200016,
    )  # fmt: skip
    text = JsonFormatter().format(record)
    assert "\n" not in text
    doc = json.loads(text)
    assert set(doc) >= {"time", "level", "logger", "message", "request_id", "client", "route", "status"}
    assert doc["message"] == "looked up 19880320-****"
    assert doc["client"] == "client 19880320-****"
    assert (doc["status"], doc["duration_ms"], doc["level"]) == (500, 12.5, "ERROR")
    assert "Traceback" in doc["exception"]
    assert "0016" not in text
    assert doc["time"].endswith("+00:00")


def test_what_the_cli_says_on_stderr_becomes_log_records(caplog: pytest.LogCaptureFixture) -> None:
    stream = LogLines(logging.getLogger("halsosamtal.cli"))
    with caplog.at_level(logging.INFO, logger="halsosamtal.cli"):
        stream.write("halsosamtal: using database x\nerror: no such thing\npartial")
        stream.flush()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "halsosamtal: using database x"),
        ("ERROR", "no such thing"),
        ("INFO", "partial"),
    ]


# --- GET /v1/status ------------------------------------------------------------------------------


async def test_status_is_for_operators_only(api: httpx.AsyncClient, make_key: KeyMaker) -> None:
    assert (await api.get("/v1/status")).status_code == 401
    assert (await api.get("/v1/status", headers=await make_key("portal"))).status_code == 403


async def test_status_shows_the_worker_the_outbox_the_batches_and_the_schema(
    api: httpx.AsyncClient,
    operator: dict[str, str],
    settings: Settings,
    resources: Resources,
    sessionmaker: async_sessionmaker[AsyncSession],
    make_unit: Any,
) -> None:
    key = heartbeat_key(settings.queue_name)
    await resources.redis.delete(key)
    down = (await api.get("/v1/status", headers=operator)).json()
    assert down["status"] == "degraded"
    assert (down["worker"]["status"], down["worker"]["reason"]) == ("down", "no worker heartbeat recorded")

    await resources.redis.set(key, str(time.time() - 3), ex=60)
    unit = await make_unit()
    await make_year(sessionmaker)
    for _ in range(3):
        person = await resident(sessionmaker, unit.id)
        await make_invitation(sessionmaker, person, unit.id)
    await execute(
        sessionmaker,
        "UPDATE messages SET status = 'queued', channel = 'letter', body = 'x', "
        "queued_at = now() - interval '90 seconds' WHERE id = (SELECT min(id) FROM messages)",
    )
    await execute(
        sessionmaker,
        "UPDATE messages SET status = 'failed', body = 'x', last_error = 'no_address' "
        "WHERE id = (SELECT max(id) FROM messages)",
    )
    await execute(
        sessionmaker,
        "INSERT INTO batch_runs (year, requested_by, state, total, done, started_at) "
        "VALUES (2027, 'test', 'running', 200, 50, now())",
    )
    body = (await api.get("/v1/status", headers=operator)).json()
    try:
        assert body["status"] == "ok"
        assert body["worker"]["status"] == "up"
        assert 2 <= body["worker"]["heartbeat_age_s"] < 30
        counts = {
            r.status: r.n
            for r in await fetch(sessionmaker, "SELECT status, count(*) AS n FROM messages GROUP BY 1")
        }
        messages = body["messages"]
        assert (messages["planned"], messages["queued"], messages["failed"]) == (
            counts.get("planned", 0),
            counts.get("queued", 0),
            counts.get("failed", 0),
        )
        assert (messages["planned"], messages["queued"], messages["failed"]) == (1, 1, 1)
        assert 89 <= messages["delivery_lag_s"] < 200
        assert [(b["status"], b["done"], b["total"], b["progress"]) for b in body["batches"]] == [
            ("running", 50, 200, 0.25)
        ]
        assert body["schema_version"]["current"] is True
        assert body["schema_version"]["database"] == body["schema_version"]["code"]

        await resources.redis.set(key, str(time.time() - 600), ex=60)
        stale = (await api.get("/v1/status", headers=operator)).json()["worker"]
        assert stale["status"] == "down"
        assert "old" in stale["reason"]
    finally:
        await resources.redis.delete(key)
