"""Defects that only real processes show, each pinned by the behaviour users expect.

Each was found (or could hide) where the in-process suite cannot look: a model module the API
process never imports, start-up without ``DATABASE_URL``, a transaction committed after its
response was sent, a connection closed after an error, a refused day in the future, and cron
runs of two deployments that share one Redis.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.product.conftest import Product, free_port
from tests.product.faulty_app import FAILING_PATH, FAILURE_MESSAGE
from tests.product.support import (
    CARE_UNIT_COLUMNS,
    RESIDENT_COLUMNS,
    RawConnection,
    cli_commands,
    cli_options,
    personnummer,
    resident_row,
    result_document,
    words,
)

SWEDEN = ZoneInfo("Europe/Stockholm")
TODAY = dt.datetime.now(SWEDEN).date()
YEAR = TODAY.year
UNIT = "SE2321000131-EREGRESSION01"
PAIRS = 1000  # a change then its read, in a row, with no miss
SLOT_PAIRS = 300  # heavier pairs (a slot published, then its day listed): fewer, same check
PAIRS_BUDGET_S = 60

# Every command that sends or changes something has ``--dry-run`` (README, the command line);
# these do neither, or are servers and development tools:
CHANGES_NOTHING = {
    "api": "serves the API",
    "worker": "runs the worker",
    "worker health": "a check",
    "dev run": "development: runs everything",
    "dev stop": "development: stops embedded servers",
    "dev token": "development: prints a resident token (makes the development key the first time)",
    "demo-data": "writes a demo register file, nothing in the service",
    "batch plan": "a preview",
    "clients list": "a listing",
    "messages failed": "a listing",
    "programme list": "a listing",
    "programme show": "a listing",
    "report participation": "a report",
    "report outcomes": "a report",
    "report reimbursement": "a report",
    "report summary": "a report",
    "audit list": "a listing (the lookup itself is recorded in the access log, as every read is)",
    "audit verify": "a check of the access log's chain",
}
CHANGING_COMMANDS = sorted(cli_commands() - set(CHANGES_NOTHING))
# Those that act for a day (``--as-of``) refuse a day that has not come; what else they need:
FOR_A_DAY = sorted(c for c in CHANGING_COMMANDS if "--as-of" in cli_options(c))
NEEDS = {"batch run": ("--year", str(YEAR)), "import residents": ("{register}",)}


@dataclass
class Lane:
    """The regression tests' own unit, clients and two invited residents."""

    ehr: dict[str, str]
    results_invitation: int
    release_pnr: str


def expect(response: httpx.Response, status: int) -> Any:
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
    )
    return response.json() if "json" in response.headers.get("content-type", "") else response.text


def invitations(product: Product, **params: Any) -> dict[str, dict[str, Any]]:
    page = product.api.get("/v1/invitations", params={"care_unit": UNIT, **params}, headers=product.operator)
    return {i["personnummer"]: i for i in expect(page, 200)["items"]}


@pytest.fixture(scope="module")
def lane(product: Product) -> Lane:
    """A participating unit with an EHR client, the year's rules (kept if the chain set them),
    and two residents turning 40 and 50 invited by ``batch run`` for today."""
    op = product.operator
    if product.api.get(f"/v1/programme-years/{YEAR}", headers=op).status_code == 404:
        rules = {"target_ages": [40, 50, 60], "talk_rate": "1000", "valid_until": f"{YEAR + 1}-03-31"}
        expect(product.api.put(f"/v1/programme-years/{YEAR}", json=rules, headers=op), 201)
    csv_headers = {**op, "Content-Type": "text/csv"}
    units = f"{CARE_UNIT_COLUMNS}\n{UNIT},Vårdcentralen Regression,1380,public,true,40\n"
    expect(product.api.post("/v1/care-units/import", content=units.encode(), headers=csv_headers), 200)
    patient = personnummer(dt.date(YEAR - 40, 1, 20), 10, sex="M")
    released = personnummer(dt.date(YEAR - 50, 1, 21), 11, sex="F")
    rows = "\n".join(resident_row(p, UNIT) for p in (patient, released))
    register = f"{RESIDENT_COLUMNS}\n{rows}\n".encode()
    imported = product.api.post(
        "/v1/residents/import", content=register, headers=csv_headers, params={"as_of": TODAY.isoformat()}
    )
    expect(imported, 200)
    product.cli("batch", "run", "--year", str(YEAR), "--as-of", TODAY.isoformat())
    invited = invitations(product)
    return Lane(
        ehr=product.key("regression-ehr", "ehr", UNIT),
        results_invitation=invited[patient]["id"],
        release_pnr=released,
    )


# --- The real API process knows every model -----------------------------------------------------


def test_a_result_is_posted_with_201_by_the_real_api_process(product: Product, lane: Lane) -> None:
    """It was a 500 in ``halsosamtal api``: ``result_versions.appointment_id`` could not find the
    ``appointments`` table, whose model module that process never imported."""
    held = dt.datetime.now(SWEDEN) - dt.timedelta(minutes=5)
    document = result_document("JRN-REGRESSION-1", held, invitation_id=lane.results_invitation)
    created = product.api.post("/v1/results", json=document, headers=lane.ehr)
    result = expect(created, 201)
    assert result["change"] == "created"
    assert (
        expect(product.api.get(f"/v1/results/{result['id']}", headers=lane.ehr), 200)["status"] == "completed"
    )


# --- Commands that send or change state ---------------------------------------------------------


@pytest.mark.parametrize("command", CHANGING_COMMANDS)
def test_every_command_that_sends_or_changes_something_has_a_dry_run(command: str) -> None:
    assert "--dry-run" in cli_options(command), f"halsosamtal {command} has no --dry-run"


def test_a_dry_run_of_the_release_changes_nothing_and_may_look_at_a_coming_day(
    product: Product, lane: Lane
) -> None:
    assert invitations(product)[lane.release_pnr]["status"] == "planned"
    for day in (TODAY, TODAY + dt.timedelta(days=1)):
        product.cli("messages", "release", "--as-of", day.isoformat(), "--dry-run")
    assert invitations(product)[lane.release_pnr]["status"] == "planned"


def test_the_commands_that_act_for_a_day_are_known() -> None:
    assert set(FOR_A_DAY) >= {
        "batch run", "import residents", "messages release", "reminders run", "invitations expire",
        "invitations withdraw",
    }  # fmt: skip


@pytest.mark.parametrize("command", FOR_A_DAY)
def test_a_day_that_has_not_come_is_refused_in_one_line(product: Product, command: str) -> None:
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    register = product.tmp / "empty-register.csv"
    register.write_text(RESIDENT_COLUMNS + "\n", encoding="utf-8")
    needs = [arg.format(register=register) for arg in NEEDS.get(command, ())]
    refused = product.cli(*command.split(), *needs, "--as-of", tomorrow, check=False)
    said = [
        line
        for line in refused.stderr.splitlines()
        if line.strip() and not line.startswith("halsosamtal: using database")
    ]
    assert refused.returncode == 2, refused
    assert len(said) == 1, refused.stderr
    assert tomorrow in said[0] or "future" in said[0].lower(), said


def test_batch_and_messages_run_without_database_url(product: Product, lane: Lane) -> None:
    """``halsosamtal batch run`` crashed when ``DATABASE_URL`` was unset. Without it (and
    without ``REDIS_URL``), every command finds the servers itself and says which."""
    if any(name in product.env for name in ("DATABASE_URL", "HALSOSAMTAL_DATABASE_URL")):
        pytest.skip("the outer environment names its own Postgres (DATABASE_URL)")
    day = TODAY.isoformat()
    for args in (
        ("batch", "run", "--year", str(YEAR), "--as-of", day),
        ("messages", "release", "--as-of", day),
        ("messages", "deliver"),
    ):
        ran = product.cli(*args)
        assert f"using database {product.database} (" in words(ran.stderr), ran.stderr
    assert invitations(product)[lane.release_pnr]["status"] == "open"


# --- One connection, many requests --------------------------------------------------------------


def _pipelined_pairs(product: Product, pairs: int, make_pair: Any, check: Any) -> tuple[int, int, list[str]]:
    """Write ``pairs`` write-then-read pairs back to back on one kept-alive connection, each
    pair sent before either answer is read; returns (pairs done, misses, first misses)."""
    misses: list[str] = []
    done = 0
    deadline = time.monotonic() + PAIRS_BUDGET_S
    with RawConnection(product.port) as conn:
        for i in range(pairs):
            if time.monotonic() > deadline:
                break
            write, read = make_pair(i)
            conn.send(write, read)
            written, seen = conn.read_response(), conn.read_response()
            assert written.status in (200, 201), (i, written.status, written.body[:300])
            assert seen.status == 200, (i, seen.status, seen.body[:300])
            if not check(i, seen.json()):
                misses.append(f"pair {i}: {seen.body[:200]!r}")
            done += 1
    return done, len(misses), misses[:5]


def test_a_read_right_after_a_change_on_one_connection_sees_the_change(product: Product, lane: Lane) -> None:
    """Uvicorn reads a pipelined request only after the one before has been answered; if the
    transaction commits after the answer is sent, the read finds the old row."""
    auth = {"Authorization": product.operator["Authorization"]}

    def pair(i: int) -> tuple[bytes, bytes]:
        return (
            RawConnection.request(
                "PATCH", f"/v1/care-units/{UNIT}", headers=auth, json_body={"weekly_capacity": i}
            ),
            RawConnection.request("GET", f"/v1/care-units/{UNIT}", headers=auth),
        )

    done, missed, examples = _pipelined_pairs(
        product, PAIRS, pair, lambda i, unit: unit["weekly_capacity"] == i
    )
    assert missed == 0, f"{missed} of {done} reads missed the change before them: {examples}"
    assert done == PAIRS, f"only {done} of {PAIRS} pairs in {PAIRS_BUDGET_S} s"


def test_a_time_is_listed_right_after_it_is_published_on_one_connection(product: Product, lane: Lane) -> None:
    auth = {"Authorization": lane.ehr["Authorization"]}
    first_day = dt.date(YEAR + 50, 1, 1)  # far ahead: a day of its own for each time

    def pair(i: int) -> tuple[bytes, bytes]:
        day = first_day + dt.timedelta(days=i)
        starts = dt.datetime.combine(day, dt.time(10, 0), tzinfo=SWEDEN)
        slot = {"starts_at": starts.isoformat(), "ends_at": (starts + dt.timedelta(minutes=30)).isoformat()}
        return (
            RawConnection.request(
                "POST", f"/v1/care-units/{UNIT}/slots", headers=auth, json_body={"slots": [slot]}
            ),
            RawConnection.request(
                "GET", f"/v1/care-units/{UNIT}/slots?first_day={day}&last_day={day}", headers=auth
            ),
        )

    done, missed, examples = _pipelined_pairs(
        product, SLOT_PAIRS, pair, lambda i, page: len(page["items"]) == 1
    )
    assert missed == 0, f"{missed} of {done} lists missed the time just published: {examples}"
    assert done == SLOT_PAIRS, f"only {done} of {SLOT_PAIRS} pairs in {PAIRS_BUDGET_S} s"


def test_after_a_500_the_connection_still_answers_and_the_error_is_logged_once(product: Product) -> None:
    """The real app, plus one route that fails, served by real uvicorn as ``halsosamtal api``
    serves it: the 500 is problem+json, the next request on the same kept-alive connection is
    answered, and the server log has the traceback once."""
    port = free_port()
    server = product.start(
        "faulty-api",
        program=[
            sys.executable, "-m", "uvicorn", "tests.product.faulty_app:app",
            "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--proxy-headers",
        ],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert server.process.poll() is None, server.tail()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=3).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        with RawConnection(port) as conn:
            conn.send(RawConnection.request("GET", FAILING_PATH))
            failed = conn.read_response()
            assert failed.status == 500
            assert failed.headers["content-type"] == "application/problem+json"
            assert failed.json()["code"] == "internal"
            assert FAILURE_MESSAGE not in failed.body.decode(), "the exception is never echoed"
            conn.send(RawConnection.request("GET", "/healthz"))
            try:
                after = conn.read_response()
            except OSError as exc:
                raise AssertionError(f"the connection died after the 500: {exc!r}") from exc
            assert (after.status, after.json()) == (200, {"status": "ok"})
    finally:
        server.stop()
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert log.count(FAILURE_MESSAGE) >= 1, log
    assert log.count("Traceback (most recent call last)") == 1, log


# --- Deployments sharing one Redis --------------------------------------------------------------


def test_the_workers_cron_runs_are_its_own_on_a_shared_redis(product: Product) -> None:
    """arq dedupes jobs by id across the whole Redis. A unique cron run's default id
    (``cron:start_queued_batches:<time>``) is the same for every deployment, so when two share
    a Redis (a developer's and a test run's, which the per-database queue name is there to
    allow) only the first to queue a tick runs it, on its own database: the other's batches
    wait, its delivery minute or its 06:00 release is skipped. The ids this worker queues must
    name its own queue or database."""
    r = product.redis()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + 12  # start_queued_batches every 5 s, heartbeat every 30 s
        while time.monotonic() < deadline and not seen:
            seen |= {m.decode() for m in r.zrange(product.queue, 0, -1) if m.startswith(b"cron:")}
            time.sleep(0.05)
    finally:
        r.close()
    assert seen, "this worker queued no cron run in 12 s: another worker on this Redis took them all"
    shared = sorted(job for job in seen if product.database not in job)
    assert not shared, f"cron runs with ids any deployment on this Redis would use: {shared}"
