"""Faults, through the real processes on servers the tests own: nothing lost, nothing sent
twice beyond what was in flight, no 5xx but a 503 that says when to retry, and work that
stopped resumes by itself.

The tests run in order on one region: the first batch's invitations are what the later ones
book and deliver. Each prints what it measured (``pytest -s`` shows it).
"""

from __future__ import annotations

import random
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.faults.conftest import QUEUE, YEAR, Stack, run_async


def measured(line: str) -> None:
    """What a test measured, on stderr (``pytest -s`` shows it; a failure's report has it)."""
    sys.stderr.write(line.lstrip("\n") + "\n")


def _batch(stack: Stack, batch_id: int) -> dict[str, Any]:
    response = stack.api.get(f"/v1/batches/{batch_id}", headers=stack.headers("operator"))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _finished(stack: Stack, batch_id: int) -> dict[str, Any] | None:
    batch = _batch(stack, batch_id)
    return batch if batch["status"] in ("done", "failed") else None


def _exactly_once(stack: Stack) -> tuple[int, int, int, int]:
    row = stack.sql(
        "SELECT count(*), count(DISTINCT resident_id), "
        "(SELECT count(*) FROM messages WHERE kind = 'invitation'), "
        "(SELECT count(*) FROM invitation_events WHERE to_status = 'planned') FROM invitations"
    )[0]
    return (row[0], row[1], row[2], row[3])


def test_a_batch_whose_worker_is_killed_finishes_by_itself_exactly_once(stack: Stack) -> None:
    eligible = stack.value(
        "SELECT count(*) FROM residents WHERE extract(year FROM birth_date) IN ($1, $2, $3)",
        YEAR - 40,
        YEAR - 50,
        YEAR - 60,
    )
    started = stack.api.post(
        "/v1/batches", headers=stack.headers("operator"), json={"year": YEAR, "as_of": "2026-12-01"}
    )
    assert started.status_code == 202, started.text
    batch_id = started.json()["id"]
    stack.wait_for(
        "the batch writing invitations",
        lambda: stack.value("SELECT count(*) FROM invitations") > 0,
        timeout=60,
        every=0.02,
    )
    stack.processes["worker"].stop(signal.SIGKILL)
    killed = time.monotonic()
    partial = stack.value("SELECT count(*) FROM invitations")
    assert 0 < partial < eligible, "the batch finished before the worker was killed"
    assert _batch(stack, batch_id)["status"] == "running"

    stack.start_worker()
    batch = stack.wait_for("the batch to finish", lambda: _finished(stack, batch_id), timeout=60)
    took = time.monotonic() - killed
    measured(f"\nbatch killed at {partial}/{eligible} invitations; finished {took:.1f} s after the kill")
    assert (batch["status"], batch["created"], batch["total"], batch["done"]) == (
        "done",
        eligible,
        eligible,
        eligible,
    )
    assert stack.value("SELECT resumes FROM batch_runs WHERE id = $1", batch_id) >= 1
    assert _exactly_once(stack) == (eligible, eligible, eligible, eligible)


@dataclass
class Booker:
    """Books times for invitations through the portal, as a patient portal would: each booking
    with its own Idempotency-Key, sent again with the same key after a 503."""

    stack: Stack
    invitations: list[tuple[int, str, int]]  # id, personnummer, care unit id
    slots: dict[int, list[int]]  # care unit id -> free slot ids

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self.answers: list[tuple[int, dict[str, Any], dict[str, str]]] = []
        self.booked: list[tuple[int, int, int]] = []  # appointment, invitation, slot

    def next(self) -> tuple[int, str, int] | None:
        with self.lock:
            if not self.invitations:
                return None
            invitation = self.invitations.pop()
            free = self.slots[invitation[2]]
            return invitation[0], invitation[1], random.choice(free)

    def book_one(self, client: httpx.Client) -> bool:
        chosen = self.next()
        if chosen is None:
            return False
        invitation_id, pnr, slot_id = chosen
        headers = {**self.stack.as_resident(pnr), "Idempotency-Key": uuid.uuid4().hex}
        body = {"personnummer": pnr, "invitation_id": invitation_id, "slot_id": slot_id}
        for _ in range(40):  # a 503 or a lost connection is sent again, for up to ~10 s
            try:
                response = client.post("/v1/portal/bookings", headers=headers, json=body)
            except httpx.TransportError:
                time.sleep(0.25)
                continue
            answer = response.json() if response.content else {}
            with self.lock:
                self.answers.append((response.status_code, answer, dict(response.headers)))
            if response.status_code == 201:
                with self.lock:
                    self.booked.append((answer["id"], invitation_id, slot_id))
            if response.status_code != 503:
                return True
            time.sleep(float(response.headers.get("retry-after", "1")) / 4)
        return True

    def run(self, stop: threading.Event) -> None:
        with httpx.Client(base_url=self.stack.base_url, timeout=30) as client:
            while not stop.is_set() and self.book_one(client):
                pass


def _booker(stack: Stack, invitations: int) -> Booker:
    rows = stack.sql(
        "SELECT i.id, r.personnummer, i.care_unit_id FROM invitations i "
        "JOIN residents r ON r.id = i.resident_id WHERE i.status = 'planned' "
        "AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.invitation_id = i.id) "
        "ORDER BY random() LIMIT $1",
        invitations,
    )
    slots: dict[int, list[int]] = {}
    for slot_id, unit_id in stack.sql("SELECT id, care_unit_id FROM slots WHERE held_by IS NULL"):
        slots.setdefault(unit_id, []).append(slot_id)
    return Booker(stack, [(r[0], r[1], r[2]) for r in rows], slots)


def _bookings_hold(stack: Stack, booker: Booker) -> None:
    """No 5xx but 503 with Retry-After; every 201 is a booking in the database; one holder per
    time and one booked time per invitation, and each time held by its appointment."""
    statuses = [status for status, _, _ in booker.answers]
    assert not [s for s in statuses if s >= 500 and s != 503], statuses
    for status, answer, headers in booker.answers:
        if status == 503:
            assert headers.get("retry-after")
            assert answer["code"] in (
                "database-unavailable",
                "retry",
                "timeout",
            )
        else:
            assert status in (201, 409), answer
    for appointment_id, invitation_id, slot_id in booker.booked:
        row = stack.sql(
            "SELECT a.invitation_id, a.slot_id, a.status, s.held_by, i.status FROM appointments a "
            "JOIN slots s ON s.id = a.slot_id JOIN invitations i ON i.id = a.invitation_id WHERE a.id = $1",
            appointment_id,
        )
        assert row, f"appointment {appointment_id} was answered 201 but is not in the database"
        assert tuple(row[0]) == (invitation_id, slot_id, "booked", appointment_id, "booked")
    assert (
        stack.value(
            "SELECT count(*) FROM appointments a JOIN slots s ON s.id = a.slot_id "
            "WHERE a.status = 'booked' AND s.held_by IS DISTINCT FROM a.id"
        )
        == 0
    )
    assert (
        stack.value(
            "SELECT count(*) FROM slots s WHERE s.held_by IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM appointments a WHERE a.id = s.held_by AND a.slot_id = s.id)"
        )
        == 0
    )


def test_without_redis_the_api_books_and_the_worker_comes_back_by_itself(stack: Stack) -> None:
    stack.redis.stop()  # without persistence: every key, the queue too, is gone
    ready = stack.api.get("/readyz")
    assert (ready.status_code, ready.json()["redis"]) == (200, "unavailable")
    booker = _booker(stack, 5)
    for _ in range(5):
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            booker.book_one(client)
    assert [s for s, _, _ in booker.answers] == [201] * 5
    _bookings_hold(stack, booker)
    queued = stack.api.post("/v1/batches", headers=stack.headers("operator"), json={"year": YEAR})
    assert queued.status_code == 202, queued.text
    stack.wait_for(
        "the worker saying Redis is away",
        lambda: "Redis unavailable" in stack.processes["worker"].log.read_text(),
        timeout=30,
    )
    assert stack.processes["worker"].alive(), stack.processes["worker"].tail()

    stack.redis.start()
    back = time.monotonic()
    import redis

    client = redis.Redis.from_url(stack.redis.url)
    try:
        stack.wait_for("a heartbeat", lambda: client.get(f"{QUEUE}:worker:heartbeat"), timeout=40)
    finally:
        client.close()
    batch = stack.wait_for("the queued batch", lambda: _finished(stack, queued.json()["id"]), timeout=40)
    measured(
        f"worker beating and the batch {batch['status']} {time.monotonic() - back:.1f} s after Redis was back"
    )
    assert batch["status"] == "done"
    assert "connected again" in stack.processes["worker"].log.read_text()


def test_postgres_restarted_under_booking_load_answers_no_500_and_no_false_201(stack: Stack) -> None:
    booker = _booker(stack, 2000)
    stop = threading.Event()
    threads = [threading.Thread(target=booker.run, args=(stop,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.5)
        stack.postgres.stop("fast")
        down = stack.api.get("/readyz")
        assert (down.status_code, down.json()["database"]) == (503, "unavailable")
        time.sleep(1.0)
        stack.postgres.start()
        time.sleep(2.0)
        stack.postgres.stop("immediate")  # a crash: connections just break
        time.sleep(0.5)
        stack.postgres.start()
        after = len(booker.booked)
        stack.wait_for("bookings after the restarts", lambda: len(booker.booked) > after + 5, timeout=30)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    statuses = [s for s, _, _ in booker.answers]
    measured(f"\nbookings through two Postgres restarts: {sorted(set(statuses))} {len(booker.booked)} booked")
    _bookings_hold(stack, booker)
    assert stack.processes["api"].alive()
    assert stack.processes["worker"].alive()


def test_a_worker_killed_mid_delivery_sends_again_at_most_what_was_in_flight(stack: Stack) -> None:
    from arq.connections import RedisSettings, create_pool

    ids = {
        str(r[0])
        for r in stack.sql(
            "WITH chosen AS (SELECT id, resident_id FROM messages "
            "  WHERE kind = 'invitation' AND status = 'planned' ORDER BY id LIMIT 300), "
            "people AS (UPDATE residents SET digital_mailbox = true "
            "  WHERE id IN (SELECT resident_id FROM chosen)) "
            "UPDATE messages m SET status = 'queued', channel = 'digital_mailbox', language = 'sv', "
            "subject = 'Inbjudan', body = 'Välkommen till ett hälsosamtal', queued_at = now() "
            "FROM chosen WHERE m.id = chosen.id RETURNING m.id"
        )
    }
    stack.receiver.delay_s = 0.03
    stack.receiver.fail_first_every = 7

    def deliver() -> None:
        async def go() -> None:
            pool = await create_pool(RedisSettings.from_dsn(stack.redis.url), default_queue_name=QUEUE)
            try:
                await pool.enqueue_job("deliver_messages")
            finally:
                await pool.aclose()

        run_async(go)

    deliver()
    stack.wait_for(
        "deliveries", lambda: len(stack.receiver.accepted_keys() & ids) >= 60, timeout=60, every=0.02
    )
    stack.processes["worker"].stop(signal.SIGKILL)
    killed = time.monotonic()
    accepted = stack.receiver.accepted_keys() & ids
    recorded = {str(r[0]) for r in stack.sql("SELECT id FROM messages WHERE status = 'sent'")} & ids
    assert len(accepted) < len(ids), "the delivery finished before the worker was killed"
    unknown = accepted - recorded
    assert len(unknown) <= 10, f"{len(unknown)} accepted messages were not recorded as sent"

    stack.receiver.fail_first_every = 0  # the receiver is well again: no new backoffs to wait out
    stack.start_worker()

    def all_sent() -> bool:
        if stack.value("SELECT count(*) FROM messages WHERE id = ANY($1::bigint[]) AND status <> 'sent'",
                       [int(i) for i in ids]) == 0:  # fmt: skip
            return True
        deliver()  # as the minutely cron does, sooner
        return False

    stack.wait_for("every message sent", all_sent, timeout=90, every=3)
    took = time.monotonic() - killed
    duplicates = stack.receiver.duplicates()
    measured(
        f"\ndelivery killed with {len(accepted)}/{len(ids)} accepted ({len(unknown)} not yet recorded); "
        f"all sent {took:.1f} s later; {duplicates} duplicates"
    )
    assert stack.receiver.accepted_keys() >= ids
    assert duplicates <= 10
