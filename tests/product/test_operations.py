"""Operations, through the real processes: ``/metrics`` of the API (and of an API with two
server processes), the worker's metrics port, JSON log lines, ``halsosamtal worker health`` and
``GET /v1/status``, red when the worker stops and green when it is back.

Runs after the chain (name order), so the database holds invitations, messages and batches."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.product.conftest import Product, Server, free_port, run_async

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
TEMPLATE_SEGMENT = re.compile(r"^(v1|[a-z][a-z0-9_.-]*|\{[a-z_]+\})$")


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    found = []
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match:
            found.append((match.group(1), dict(LABEL.findall(match.group(2) or "")), float(match.group(3))))
    return found


def value(text: str, name: str, **labels: str) -> float | None:
    for sample, have, number in samples(text):
        if sample == name and have == labels:
            return number
    return None


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = probe()
            if last:
                return last
        except (httpx.TransportError, AssertionError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def query(product: Product, sql: str) -> list[Any]:
    async def go() -> list[Any]:
        import asyncpg

        conn = await asyncpg.connect(product.database_url)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return list(run_async(go))


def outbox_in_database(product: Product) -> dict[tuple[str, str], int]:
    rows = query(
        product,
        "SELECT coalesce(channel, 'none') AS c, status AS s, count(*) AS n FROM messages GROUP BY 1, 2",
    )
    return {(r["c"], r["s"]): int(r["n"]) for r in rows}


def steady(read: Callable[[], Any], product: Product) -> tuple[Any, dict[tuple[str, str], int]]:
    """``read()`` between two equal reads of the outbox (the worker delivers meanwhile)."""
    for _ in range(10):
        before = outbox_in_database(product)
        result = read()
        if outbox_in_database(product) == before:
            return result, before
        time.sleep(0.5)
    raise AssertionError("the outbox never held still for one read")


def json_lines(server: Server) -> list[dict[str, Any]]:
    lines = [line for line in server.log.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert lines, f"{server.name} wrote nothing"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{server.name} wrote a line that is not JSON: {line!r}") from exc
    return parsed


# --- The API's /metrics -----------------------------------------------------------------------


def test_the_real_api_counts_requests_by_route_template_and_no_label_is_personal(product: Product) -> None:
    for _ in range(2):
        assert product.api.get("/v1/batches/987654321", headers=product.operator).status_code == 404
    scraped = httpx.get(f"{product.base_url}/metrics", timeout=30)
    assert scraped.status_code == 200
    text = scraped.text
    assert (
        value(
            text,
            "halsosamtal_http_requests_total",
            method="GET",
            route="/v1/batches/{batch_id}",
            status="4xx",
        )
        or 0
    ) >= 2
    routes = set()
    for name, labels, _ in samples(text):
        for label, content in labels.items():
            assert not re.search(r"\d{5,}", content), f"{name} has a number in {label}={content!r}"
        if "route" in labels:
            routes.add(labels["route"])
    assert "/v1/status" in routes or "/v1/programme-years" in routes
    for route in routes - {"unmatched"}:
        assert all(TEMPLATE_SEGMENT.match(seg) for seg in route.strip("/").split("/")), route
    assert "987654321" not in text
    assert "/v1/batches/{batch_id}" in routes


# --- The worker's metrics port, /v1/status and JSON lines of the worker -----------------------


def test_the_workers_port_and_the_status_route_show_what_the_database_holds(product: Product) -> None:
    port = free_port()
    env = {**product.env, "HALSOSAMTAL_WORKER_METRICS_PORT": str(port), "HALSOSAMTAL_LOG_FORMAT": "json"}
    server = product.start("worker-metrics", "worker", env=env)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(
            "the worker's metrics port", lambda: httpx.get(url, timeout=10).status_code == 200, timeout=90
        )
        text, held = steady(lambda: httpx.get(url, timeout=30).text, product)
        assert held, "the chain left no messages"
        for (channel, status), n in held.items():
            assert value(text, "halsosamtal_outbox_messages", channel=channel, status=status) == n, (
                channel,
                status,
            )
        shown = sum(v for name, _, v in samples(text) if name == "halsosamtal_outbox_messages")
        assert shown == sum(held.values())
        assert value(text, "halsosamtal_worker_database_up") == 1
        assert value(text, "halsosamtal_outbox_oldest_queued_age_seconds") is not None
        batches = query(product, "SELECT state AS status, count(*) AS n FROM batch_runs GROUP BY 1")
        states = {r["status"]: int(r["n"]) for r in batches}
        assert value(text, "halsosamtal_batches", status="queued") == states.get("queued", 0)
        sent_today = query(
            product,
            "SELECT count(*) AS n FROM messages WHERE kind = 'reminder' AND status = 'sent' "
            "AND (sent_at AT TIME ZONE 'Europe/Stockholm')::date "
            "= (now() AT TIME ZONE 'Europe/Stockholm')::date",
        )[0]["n"]
        assert value(text, "halsosamtal_reminders_sent_today") == sent_today
        age = value(text, "halsosamtal_worker_heartbeat_age_seconds")
        assert age is not None
        assert age < 45
        # This worker shares the queue with the product's: it runs some of the cron ticks.
        started = wait_for(
            "the worker's job counters",
            lambda: [
                n
                for name, _, n in samples(httpx.get(url, timeout=30).text)
                if name == "halsosamtal_worker_jobs_started_total"
            ],
            # It competes with the product's worker for every tick; a loaded machine is slow.
            timeout=150,
        )
        assert sum(started) >= 1

        status, held = steady(lambda: product.api.get("/v1/status", headers=product.operator).json(), product)
        messages = status["messages"]
        for name in ("planned", "queued", "sending", "failed"):
            assert messages[name] == sum(n for (_, s), n in held.items() if s == name), name
        assert status["worker"]["status"] == "up"
        assert status["schema_version"]["current"] is True
    finally:
        server.stop()
        product.servers.pop("worker-metrics", None)
    lines = json_lines(server)
    assert {"time", "level", "logger", "message"} <= set(lines[-1])
    assert any(line["logger"] == "arq.worker" for line in lines)


# --- JSON logs and metrics of an API with two server processes --------------------------------


def test_an_api_of_two_processes_writes_json_lines_and_adds_up_its_metrics(product: Product) -> None:
    port = free_port()
    env = {**product.env, "HALSOSAMTAL_LOG_FORMAT": "json"}
    server = product.start("api-json", "api", "--port", str(port), "--workers", "2", env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(
            "the second API", lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, timeout=90
        )
        for i in range(20):
            headers = {**product.operator, "X-Request-ID": f"ops-json-{i}"}
            assert httpx.get(f"{base}/v1/programme-years", headers=headers, timeout=30).status_code == 200
        for _ in range(4):  # each scrape is answered by either process: each sees both's counts
            text = httpx.get(f"{base}/metrics", timeout=30).text
            counted = value(
                text,
                "halsosamtal_http_requests_total",
                method="GET",
                route="/v1/programme-years",
                status="2xx",
            )
            assert counted == 20
    finally:
        server.stop()
        product.servers.pop("api-json", None)
    lines = json_lines(server)
    access = {line["request_id"]: line for line in lines if line["logger"] == "halsosamtal.access"}
    for i in range(20):
        line = access[f"ops-json-{i}"]
        assert (line["route"], line["status"], line["client"], line["level"]) == (
            "/v1/programme-years", 200, "product-operator", "INFO",
        )  # fmt: skip
        assert line["duration_ms"] >= 0
    assert any(line["logger"].startswith("uvicorn") for line in lines)


# --- The worker's health, red and green -------------------------------------------------------


def test_worker_health_and_the_status_turn_red_when_the_worker_stops_and_green_again(
    product: Product,
) -> None:
    def healthy() -> bool:
        return product.cli("worker", "health", check=False).returncode == 0

    wait_for("a green worker health", healthy)
    green = product.cli("worker", "health")
    assert "worker up: last heartbeat" in green.stdout

    product.servers.pop("worker").stop()
    red = product.cli("worker", "health", check=False)
    assert red.returncode == 1
    reason = [line for line in red.stderr.splitlines() if line.startswith("error:")]
    assert len(reason) == 1
    assert "worker down: no worker heartbeat" in reason[0]
    status = product.api.get("/v1/status", headers=product.operator).json()
    assert (status["status"], status["worker"]["status"]) == ("degraded", "down")

    product.start("worker", "worker")
    wait_for("the worker back", healthy, timeout=90)
    status = product.api.get("/v1/status", headers=product.operator).json()
    assert (status["status"], status["worker"]["status"]) == ("ok", "up")
