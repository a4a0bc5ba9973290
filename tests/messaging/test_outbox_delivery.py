"""Delivery: webhook with failures and a deduping receiver, crash take-over, the print file,
and the operators' failed list and retry."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from halsosamtal.core import clock
from halsosamtal.core.runtime import Resources
from halsosamtal.core.settings import Settings
from halsosamtal.invitations import release
from halsosamtal.invitations.lifecycle_jobs import release_messages
from halsosamtal.messaging import outbox
from halsosamtal.messaging.jobs import CRON_JOBS, FUNCTIONS, deliver_messages
from halsosamtal.messaging.letters import print_file_name
from halsosamtal.messaging.models import Message
from halsosamtal.messaging.webhook import OutgoingMessage, WebhookGateway, verify_signature
from halsosamtal.residents.contacts import Recipient
from halsosamtal.residents.models import Resident
from halsosamtal.units.models import CareUnit
from tests.messaging.factories import SEND_ON, execute, fetch, make_invitation, make_year, resident

SM = async_sessionmaker[AsyncSession]
MakeUnit = Callable[..., Awaitable[CareUnit]]
SECRET = "outbox-test-secret-0123456789"
NO_ADDRESS: dict[str, Any] = {"address_line": None, "postal_code": None, "city": None}


@dataclass
class Receiver:
    """A notification service that answers each message id from a script, then 200, and
    dedupes by Idempotency-Key like a real one: a repeated key is answered 200 and not sent."""

    url: str
    script: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, int]] = field(default_factory=list)
    delivered: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    delay_s: float = 0.0

    def reset(self) -> None:
        self.delay_s = 0.0
        self.script.clear()
        self.requests.clear()
        self.delivered.clear()
        self.bad_signatures = 0


def _receiver_app(receiver: Receiver) -> Starlette:
    async def hook(request: Request) -> Response:
        body = await request.body()
        if not verify_signature(
            SECRET.encode(),
            request.headers.get("x-halsosamtal-timestamp"),
            body,
            request.headers.get("x-halsosamtal-signature"),
        ):
            receiver.bad_signatures += 1
            return Response(status_code=401)
        key = request.headers["idempotency-key"]
        assert json.loads(body)["message_id"] == key
        if receiver.delay_s:
            await asyncio.sleep(receiver.delay_s)
        planned = receiver.script.get(key) or []
        status = planned.pop(0) if planned else 200
        receiver.requests.append((key, status))
        if status == 200 and key not in receiver.delivered:
            receiver.delivered[key] += 1  # the one real send
        headers = {"Retry-After": "1"} if status == 429 else {}
        return Response(status_code=status, headers=headers)

    return Starlette(routes=[Route("/hook", hook, methods=["POST"])])


@pytest.fixture(scope="module")
async def receiver_server() -> AsyncIterator[Receiver]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    receiver = Receiver(url=f"http://127.0.0.1:{sock.getsockname()[1]}/hook")
    server = uvicorn.Server(uvicorn.Config(_receiver_app(receiver), lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield receiver
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


@pytest.fixture
def receiver(receiver_server: Receiver) -> Receiver:
    receiver_server.reset()
    return receiver_server


@pytest.fixture
def hook_settings(settings: Settings, receiver: Receiver, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "messaging_gateway": "webhook",
            "webhook_url": receiver.url,
            "webhook_secret": SecretStr(SECRET),
            "webhook_timeout_s": 5.0,
            "letters_dir": tmp_path / "letters",
        }
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def _queued(
    sm: SM, settings: Settings, unit: CareUnit, people: dict[str, dict[str, Any]]
) -> dict[str, int]:
    """Invitations for residents with the given fields, released; returns message ids by key."""
    await make_year(sm)
    ids = {}
    for key, fields in people.items():
        _, ids[key] = await make_invitation(sm, await resident(sm, unit.id, **fields), unit.id)
    await release.release_due(sm, settings, SEND_ON)
    return ids


async def _time_passes(sm: SM) -> None:
    """Every retry's backoff is over (instead of waiting for it)."""
    await execute(sm, "UPDATE messages SET next_attempt_at = now() WHERE status = 'queued'")


SMS: dict[str, Any] = {"phone": "0701234567"}


async def test_a_receiver_that_fails_some_requests_still_gets_every_message_exactly_once(
    sessionmaker: SM,
    hook_settings: Settings,
    receiver: Receiver,
    make_unit: MakeUnit,
    client: httpx.AsyncClient,
    operator: dict[str, str],
) -> None:
    unit = await make_unit()
    people = {k: dict(SMS) for k in ("ok", "500", "429", "503x2", "400")}
    people["mailbox"] = {"digital_mailbox": True}
    ids = await _queued(sessionmaker, hook_settings, unit, people)
    key = {k: str(v) for k, v in ids.items()}
    receiver.script.update(
        {key["500"]: [500], key["429"]: [429], key["503x2"]: [503, 503], key["400"]: [400]}
    )

    first = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (first.claimed, first.sent, first.retried, first.failed) == (6, 2, 3, 1)
    waiting = await fetch(
        sessionmaker, "SELECT next_attempt_at > now() FROM messages WHERE status = 'queued'"
    )
    assert [w for (w,) in waiting] == [True, True, True], "a retry waits for its backoff"
    assert (await outbox.deliver_due(sessionmaker, hook_settings)).claimed == 0

    await _time_passes(sessionmaker)
    second = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (second.sent, second.retried) == (2, 1)
    await _time_passes(sessionmaker)
    third = await outbox.deliver_due(sessionmaker, hook_settings)
    assert third.sent == 1

    assert receiver.bad_signatures == 0
    assert dict(receiver.delivered) == {key[k]: 1 for k in ("ok", "500", "429", "503x2", "mailbox")}
    assert Counter(k for k, _ in receiver.requests) == {
        key["ok"]: 1,
        key["mailbox"]: 1,
        key["500"]: 2,
        key["429"]: 2,
        key["503x2"]: 3,
        key["400"]: 1,
    }
    rows = {
        r.id: r
        for r in await fetch(sessionmaker, "SELECT id, status, attempts, last_error, sent_at FROM messages")
    }
    assert (rows[ids["503x2"]].attempts, rows[ids["503x2"]].status) == (3, "sent")
    assert (rows[ids["400"]].status, rows[ids["400"]].last_error) == ("failed", "HTTP 400 Bad Request")
    attempts = await fetch(
        sessionmaker,
        "SELECT outcome, http_status FROM delivery_attempts WHERE message_id = :id ORDER BY id",
        id=ids["503x2"],
    )
    assert attempts == [("retry", 503), ("retry", 503), ("sent", 200)]

    # The permanent failure is in the operators' list, and a retry sends it (once).
    listed = await client.get("/v1/messages/failed", headers=operator)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert (item["id"], item["last_error"], item["channel"], item["attempts"]) == (
        ids["400"],
        "HTTP 400 Bad Request",
        "sms",
        1,
    )
    assert item["last_attempt_at"] is not None
    assert "body" not in item
    assert (await client.get("/v1/messages/failed?channel=digital_mailbox", headers=operator)).json()[
        "items"
    ] == []
    assert (await client.get("/v1/messages/failed?kind=reminder", headers=operator)).json()["items"] == []

    retried = await client.post(f"/v1/messages/{ids['400']}/retry", headers=operator)
    assert retried.status_code == 200, retried.text
    assert (retried.json()["status"], retried.json()["attempts"]) == ("queued", 1)
    again = await client.post(f"/v1/messages/{ids['400']}/retry", headers=operator)
    assert (again.status_code, again.json()["code"]) == (409, "message-not-failed")
    assert (await outbox.deliver_due(sessionmaker, hook_settings)).sent == 1
    assert receiver.delivered[key["400"]] == 1
    assert (await client.get("/v1/messages/failed", headers=operator)).json()["items"] == []


async def test_after_the_last_try_a_message_fails(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    settings = hook_settings.model_copy(update={"delivery_max_attempts": 2})
    unit = await make_unit()
    ids = await _queued(sessionmaker, settings, unit, {"down": SMS})
    receiver.script[str(ids["down"])] = [500, 500, 500]
    assert (await outbox.deliver_due(sessionmaker, settings)).retried == 1
    await _time_passes(sessionmaker)
    assert (await outbox.deliver_due(sessionmaker, settings)).failed == 1
    [(status, attempts, error)] = await fetch(
        sessionmaker, "SELECT status, attempts, last_error FROM messages"
    )
    assert (status, attempts, error) == ("failed", 2, "HTTP 500 Internal Server Error")
    assert len(receiver.requests) == 2


async def test_a_message_left_sending_by_a_killed_worker_is_sent_again_with_the_same_id(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {"a": SMS})
    # A worker claims the message, sends it, and is killed before it records the outcome.
    async with sessionmaker() as s, s.begin():
        [claimed] = await outbox.claim(s, letters=False, limit=10, lease_s=600)
        person = (
            await s.execute(
                select(Resident)
                .join(Message, Message.resident_id == Resident.id)
                .where(Message.id == claimed.id)
            )
        ).scalar_one()
    async with WebhookGateway(receiver.url, SECRET.encode()) as gateway:
        sent = await gateway.send(
            OutgoingMessage(
                str(claimed.id), "invitation", "sms", "sv", Recipient.from_resident(person), claimed.body
            )
        )
    assert sent.ok

    # While its lease runs, nobody else touches it.
    assert (await outbox.deliver_due(sessionmaker, hook_settings)).claimed == 0
    await execute(sessionmaker, "UPDATE messages SET next_attempt_at = now() - interval '1 second'")
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (report.claimed, report.sent) == (1, 1)
    assert receiver.requests == [(str(ids["a"]), 200)] * 2, "the same id both times"
    assert receiver.delivered == Counter({str(ids["a"]): 1}), "the receiver sent it once"
    [(status, attempts)] = await fetch(sessionmaker, "SELECT status, attempts FROM messages")
    assert (status, attempts) == ("sent", 2)

    # The killed worker's late outcome is fenced out: its attempt no longer holds the claim.
    async with sessionmaker() as s, s.begin():
        await outbox.record_outcomes(
            s, [outbox.Outcome(ids["a"], 1, "webhook", "retry", 500, "HTTP 500", 30)]
        )
    [(status, attempts)] = await fetch(sessionmaker, "SELECT status, attempts FROM messages")
    assert (status, attempts) == ("sent", 2)


def _read(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


async def test_letters_go_to_the_days_print_file_protected_ones_without_an_address(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(
        sessionmaker,
        hook_settings,
        unit,
        {
            "address": {},
            # The register should not hold a protected resident's address; if it does, it is
            # still never printed.
            "protected": {"protected_identity": True},
            "sms": SMS,
        },
    )
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (report.claimed, report.sent) == (3, 3)
    path = hook_settings.letters_directory / print_file_name(clock.local_today())
    assert report.print_files == [str(path)]
    rows = {r["message_id"]: r for r in _read(path)}
    assert set(rows) == {str(ids["address"]), str(ids["protected"])}
    plain, protected = rows[str(ids["address"])], rows[str(ids["protected"])]
    assert (plain["route"], plain["address_line"], plain["postal_code"], plain["forward_personnummer"]) == (
        "address",
        "Storgatan 1",
        "302 31",
        "",
    )
    assert protected["route"] == "skatteverket_forwarding"
    assert (protected["address_line"], protected["postal_code"], protected["city"]) == ("", "", "")
    assert (
        "Storgatan"
        not in path.read_text(encoding="utf-8").split(str(ids["protected"]), 1)[1].split("\r\n")[0]
    )
    assert len(protected["forward_personnummer"]) == 13
    assert unit.name in plain["body"]
    assert plain["subject"]
    assert receiver.delivered == Counter({str(ids["sms"]): 1})
    assert path.stat().st_mode & 0o777 == 0o600

    # A worker killed after writing the file but before marking the letter sent: the letter is
    # taken over, and the rewrite is the identical file (not even touched).
    content, mtime = path.read_bytes(), path.stat().st_mtime_ns
    await execute(
        sessionmaker,
        "UPDATE messages SET status = 'sending', next_attempt_at = now() - interval '1 second' "
        "WHERE id = :id",
        id=ids["protected"],
    )
    again = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (again.claimed, again.sent) == (1, 1)
    assert (path.read_bytes(), path.stat().st_mtime_ns) == (content, mtime)

    # A later letter of the same day joins the same file, next to the earlier ones.
    more = await resident(sessionmaker, unit.id)
    _, later = await make_invitation(sessionmaker, more, unit.id)
    await release.release_due(sessionmaker, hook_settings, SEND_ON)
    await outbox.deliver_due(sessionmaker, hook_settings)
    assert [r["message_id"] for r in _read(path)] == [str(ids["address"]), str(ids["protected"]), str(later)]


async def test_a_letter_whose_address_left_the_register_fails_and_is_not_printed(
    sessionmaker: SM, hook_settings: Settings, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {"a": {}, "b": {}})
    await execute(
        sessionmaker,
        "UPDATE residents SET address_line = NULL "
        "WHERE id = (SELECT resident_id FROM messages WHERE id = :id)",
        id=ids["b"],
    )
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert (report.sent, report.failed) == (1, 1)
    path = hook_settings.letters_directory / print_file_name(clock.local_today())
    assert [r["message_id"] for r in _read(path)] == [str(ids["a"])]
    [(status, error, sent_at)] = await fetch(
        sessionmaker, "SELECT status, last_error, sent_at FROM messages WHERE id = :id", id=ids["b"]
    )
    assert (status, error, sent_at) == ("failed", "no_address", None)


async def test_an_unreachable_resident_retried_after_the_register_is_fixed_is_released(
    sessionmaker: SM,
    hook_settings: Settings,
    make_unit: MakeUnit,
    client: httpx.AsyncClient,
    operator: dict[str, str],
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    person = await resident(sessionmaker, unit.id, **NO_ADDRESS)
    invitation_id, message_id = await make_invitation(sessionmaker, person, unit.id)
    await release.release_due(sessionmaker, hook_settings, SEND_ON)

    still = await client.post(f"/v1/messages/{message_id}/retry", headers=operator)
    assert (still.status_code, still.json()["status"], still.json()["last_error"]) == (
        200,
        "failed",
        "no_address",
    )

    await execute(
        sessionmaker,
        "UPDATE residents SET address_line = 'Nygatan 2', postal_code = '30232', city = 'Halmstad' "
        "WHERE id = :id",
        id=person.id,
    )
    retried = await client.post(f"/v1/messages/{message_id}/retry", headers=operator)
    assert (retried.json()["status"], retried.json()["channel"]) == ("queued", "letter")

    history = await client.get(f"/v1/invitations/{invitation_id}/history", headers=operator)
    assert history.status_code == 200, history.text
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in history.json()["events"]] == [
        (None, "planned", "cli"),
        ("planned", "open", history.json()["events"][1]["actor"]),
    ]
    assert history.json()["events"][1]["actor"].startswith("operator-")
    assert history.json()["status"] == "open"


async def test_retry_answers_404_and_409(
    sessionmaker: SM,
    hook_settings: Settings,
    make_unit: MakeUnit,
    client: httpx.AsyncClient,
    operator: dict[str, str],
) -> None:
    missing = await client.post("/v1/messages/999999/retry", headers=operator)
    assert (missing.status_code, missing.json()["code"]) == (404, "message-not-found")
    assert missing.headers["content-type"] == "application/problem+json"
    unit = await make_unit()
    await make_year(sessionmaker)
    invitation_id, message_id = await make_invitation(
        sessionmaker, await resident(sessionmaker, unit.id, **NO_ADDRESS), unit.id
    )
    await release.release_due(sessionmaker, hook_settings, SEND_ON)
    await execute(
        sessionmaker, "UPDATE invitations SET status = 'withdrawn' WHERE id = :id", id=invitation_id
    )
    closed = await client.post(f"/v1/messages/{message_id}/retry", headers=operator)
    assert (closed.status_code, closed.json()["code"]) == (409, "message-not-retryable")
    assert (await client.get("/v1/invitations/999999/history", headers=operator)).status_code == 404
    bad_cursor = await client.get("/v1/messages/failed?cursor=nonsense", headers=operator)
    assert bad_cursor.status_code == 422


async def test_the_failed_list_pages_newest_first(
    sessionmaker: SM,
    hook_settings: Settings,
    make_unit: MakeUnit,
    client: httpx.AsyncClient,
    operator: dict[str, str],
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {str(i): NO_ADDRESS for i in range(5)})
    seen: list[int] = []
    cursor = None
    while True:
        url = "/v1/messages/failed?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(url, headers=operator)).json()
        seen += [m["id"] for m in page["items"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert seen == sorted(ids.values(), reverse=True)


async def test_a_queued_message_whose_invitation_closed_is_cancelled_not_sent(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {"a": SMS})
    # The change that closes an invitation (every one goes through change_status) stops its
    # queued letter and reminders; delivery then has nothing of it to send.
    from halsosamtal.invitations.lifecycle import change_status

    async with sessionmaker() as s, s.begin():
        (invitation_id,) = (await s.execute(text("SELECT id FROM invitations"))).one()
        await change_status(s, invitation_id, "open", "booked", reason="booked", actor="test")
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert report.claimed == 0
    assert receiver.requests == []
    assert dict(await fetch(sessionmaker, "SELECT id, status FROM messages")) == {ids["a"]: "cancelled"}


async def test_the_jobs_release_and_deliver(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, resources: Resources, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    await make_year(sessionmaker)
    _, message_id = await make_invitation(sessionmaker, await resident(sessionmaker, unit.id, **SMS), unit.id)
    ctx: dict[str, Any] = {
        "resources": Resources(hook_settings, resources.engine, sessionmaker, resources.redis)
    }
    released = await release_messages(ctx, SEND_ON.isoformat())
    assert released["queued"] == 1
    delivered = await deliver_messages(ctx)
    assert delivered["sent"] == 1
    assert receiver.delivered == Counter({str(message_id): 1})
    assert {f.name for f in FUNCTIONS} == {"deliver_messages"}
    assert all(c.unique and c.timeout_s for c in CRON_JOBS)


async def test_a_print_file_that_cannot_be_written_is_retried_later(
    sessionmaker: SM, hook_settings: Settings, make_unit: MakeUnit, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    settings = hook_settings.model_copy(update={"letters_dir": blocked})
    unit = await make_unit()
    ids = await _queued(sessionmaker, settings, unit, {"a": {}})
    report = await outbox.deliver_due(sessionmaker, settings)
    assert (report.retried, report.sent, report.print_files) == (1, 0, [])
    [row] = await fetch(sessionmaker, "SELECT status, attempts, last_error, sent_at FROM messages")
    assert (row.status, row.attempts, row.sent_at) == ("queued", 1, None)
    assert row.last_error.startswith("print file not written")

    await _time_passes(sessionmaker)
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert report.sent == 1
    path = hook_settings.letters_directory / print_file_name(clock.local_today())
    assert [r["message_id"] for r in _read(path)] == [str(ids["a"])]


async def test_two_delivery_passes_at_once_send_each_message_once(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {str(i): SMS for i in range(40)})
    reports = await asyncio.gather(
        outbox.deliver_due(sessionmaker, hook_settings, chunk=5),
        outbox.deliver_due(sessionmaker, hook_settings, chunk=5),
    )
    assert sum(r.sent for r in reports) == 40
    assert all(r.sent for r in reports), "both passes took part"
    assert Counter(k for k, _ in receiver.requests) == {str(i): 1 for i in ids.values()}


async def test_a_pass_killed_mid_chunk_has_recorded_every_send_but_those_in_flight(
    sessionmaker: SM, hook_settings: Settings, receiver: Receiver, make_unit: MakeUnit
) -> None:
    unit = await make_unit()
    ids = await _queued(sessionmaker, hook_settings, unit, {str(i): SMS for i in range(60)})
    receiver.delay_s = 0.05
    delivery = asyncio.create_task(outbox.deliver_due(sessionmaker, hook_settings))
    for _ in range(2000):  # bounded: at most ~10 s
        if len(receiver.delivered) >= 25 or delivery.done():
            break
        await asyncio.sleep(0.005)
    delivery.cancel()  # the worker is killed: nothing after this point is recorded
    await asyncio.gather(delivery, return_exceptions=True)
    accepted = set(receiver.delivered)
    sent = {str(r.id) for r in await fetch(sessionmaker, "SELECT id FROM messages WHERE status = 'sent'")}
    assert 25 <= len(accepted) < 60, "killed mid-pass"
    assert sent <= accepted
    assert len(accepted - sent) <= outbox.DELIVERY_CONCURRENCY, "only the sends in flight are unknown"

    # The leases run out; the next pass sends the rest, and again only what was in flight.
    receiver.delay_s = 0.0
    await execute(
        sessionmaker,
        "UPDATE messages SET next_attempt_at = now() - interval '1 second' WHERE status = 'sending'",
    )
    report = await outbox.deliver_due(sessionmaker, hook_settings)
    assert report.sent == 60 - len(sent)
    requests = Counter(k for k, _ in receiver.requests)
    assert set(requests) == {str(i) for i in ids.values()}
    assert sum(n - 1 for n in requests.values()) <= outbox.DELIVERY_CONCURRENCY
