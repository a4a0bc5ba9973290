"""The webhook gateway against a real HTTP server on 127.0.0.1 that checks signatures.

The server is a small Starlette app served by uvicorn in the test's event loop. Its path says
what to answer (``/status/429?retry_after=7``), so each test scripts the gateway's response
without any shared state but the list of requests the server saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import random
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from halsosamtal.messaging.channels import Undeliverable
from halsosamtal.messaging.templates import MessageContext, render
from halsosamtal.messaging.webhook import (
    BACKOFF_CAP_S,
    DeliveryResult,
    OutgoingMessage,
    WebhookGateway,
    backoff,
    classify,
    parse_retry_after,
    signature,
    verify_signature,
)
from halsosamtal.residents.contacts import Recipient
from tests.factories import personnummer

SECRET = b"test-webhook-secret-0123456789abcdef"

RECIPIENT = Recipient(
    personnummer=personnummer(dt.date(1987, 6, 1)),
    language="sv",
    protected_identity=False,
    digital_mailbox=True,
    phone="070-123 45 67",
    address_line="Storgatan 1",
    postal_code="302 31",
    city="Halmstad",
)
CONTEXT = MessageContext(
    unit_name="Vårdcentralen Andersberg",
    year=2027,
    age=40,
    valid_until=dt.date(2028, 3, 31),
    booking_url="https://halsosamtal.regionhalland.se/boka",
)


def _sms(message_id: str = "4711") -> OutgoingMessage:
    return OutgoingMessage.from_rendered(
        message_id, RECIPIENT, "sms", render("invitation", "short", "sv", CONTEXT)
    )


def _mailbox(message_id: str = "4712") -> OutgoingMessage:
    return OutgoingMessage.from_rendered(
        message_id, RECIPIENT, "digital_mailbox", render("invitation", "long", "en", CONTEXT)
    )


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class HookServer:
    base_url: str
    requests: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _app(hook: HookServer) -> Starlette:
    async def record(request: Request) -> None:
        body = await request.body()
        ok = verify_signature(
            SECRET,
            request.headers.get("x-halsosamtal-timestamp"),
            body,
            request.headers.get("x-halsosamtal-signature"),
        )
        hook.requests.append(Seen(request.url.path, dict(request.headers), body, ok))

    async def status(request: Request) -> Response:
        await record(request)
        code = int(request.path_params["code"])
        headers = {}
        if "retry_after" in request.query_params:
            headers["Retry-After"] = request.query_params["retry_after"]
        # An error body that echoes the request, as careless gateways do: it must not leak.
        payload = json.loads(hook.requests[-1].body)
        return JSONResponse({"echo": payload, "error": "rejected"}, status_code=code, headers=headers)

    async def slow(request: Request) -> Response:
        await record(request)
        # Held until the test ends (bounded), far beyond the gateway's timeout.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hook.release.wait(), timeout=10)
        return Response(status_code=200)

    async def redirect(request: Request) -> Response:
        await record(request)
        return RedirectResponse("/status/200", status_code=307)

    return Starlette(
        routes=[
            Route("/status/{code:int}", status, methods=["POST"]),
            Route("/slow", slow, methods=["POST"]),
            Route("/redirect", redirect, methods=["POST"]),
        ]
    )


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[HookServer]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    hook = HookServer(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}")
    config = uvicorn.Config(_app(hook), lifespan="off", log_level="warning", timeout_graceful_shutdown=2)
    uv_server = uvicorn.Server(config)
    task = asyncio.create_task(uv_server.serve(sockets=[sock]))
    for _ in range(500):
        if uv_server.started or task.done():
            break
        await asyncio.sleep(0.01)
    assert uv_server.started, "test webhook server did not start"
    try:
        yield hook
    finally:
        hook.release.set()
        uv_server.should_exit = True
        await asyncio.wait_for(task, timeout=10)
        sock.close()


@pytest.fixture
async def hook(server: HookServer) -> AsyncIterator[HookServer]:
    server.requests.clear()
    server.release = asyncio.Event()
    yield server
    server.release.set()  # let a held slow response finish now, not at shutdown


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


async def test_a_2xx_is_ok_and_the_request_is_signed(hook: HookServer, client: httpx.AsyncClient) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/202", SECRET, timeout=5, client=client)
    result = await gateway.send(_sms("4711"))
    assert result == DeliveryResult("ok", status=202)
    assert result.ok
    [seen] = hook.requests
    assert seen.signature_ok
    assert seen.headers["idempotency-key"] == "4711"
    assert seen.headers["content-type"] == "application/json"
    assert abs(int(seen.headers["x-halsosamtal-timestamp"]) - time.time()) < 60
    assert seen.headers["x-halsosamtal-signature"].startswith("sha256=")


async def test_an_sms_carries_the_phone_number_and_nothing_else_personal(
    hook: HookServer, client: httpx.AsyncClient
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/200", SECRET, timeout=5, client=client)
    message = _sms("4711")
    await gateway.send(message)
    [seen] = hook.requests
    payload = json.loads(seen.body)
    assert payload == {
        "message_id": "4711",
        "kind": "invitation",
        "channel": "sms",
        "language": "sv",
        "recipient": {"phone": "+46701234567"},
        "subject": None,
        "body": message.body,
    }
    text = seen.body.decode("utf-8")
    for personal in (RECIPIENT.personnummer, RECIPIENT.personnummer[2:], "Storgatan", "302 31", "Halmstad"):
        assert personal not in text


async def test_a_digital_mailbox_message_is_addressed_by_personnummer_only(
    hook: HookServer, client: httpx.AsyncClient
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/200", SECRET, timeout=5, client=client)
    message = _mailbox("4712")
    assert (await gateway.send(message)).ok
    [seen] = hook.requests
    payload = json.loads(seen.body)
    assert payload["recipient"] == {"personnummer": RECIPIENT.personnummer}
    assert payload["channel"] == "digital_mailbox"
    assert payload["language"] == "en"
    assert payload["subject"] == message.subject
    assert payload["subject"]
    text = seen.body.decode("utf-8")
    for personal in ("0701234567", "+46701234567", "070-123", "Storgatan", "302 31", "Halmstad"):
        assert personal not in text


async def test_a_retried_send_uses_the_same_idempotency_key(
    hook: HookServer, client: httpx.AsyncClient
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/500", SECRET, timeout=5, client=client)
    await gateway.send(_sms("777"))
    await gateway.send(_sms("777"))
    assert [s.headers["idempotency-key"] for s in hook.requests] == ["777", "777"]
    assert all(s.signature_ok for s in hook.requests)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_and_request_timeouts_are_retryable(
    hook: HookServer, client: httpx.AsyncClient, status: int
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/{status}", SECRET, timeout=5, client=client)
    result = await gateway.send(_sms())
    assert (result.outcome, result.status, result.retry_after) == ("retryable", status, None)
    assert result.error is not None
    assert result.error.startswith(f"HTTP {status}")


async def test_429_is_retryable_and_honours_retry_after_seconds(
    hook: HookServer, client: httpx.AsyncClient
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/429?retry_after=7", SECRET, timeout=5, client=client)
    result = await gateway.send(_sms())
    assert result == DeliveryResult("retryable", 429, "HTTP 429 Too Many Requests", 7.0)
    assert result.retry_delay(1, rng=random.Random(1)) >= 7.0
    # Past the gateway's wish, our own backoff takes over again.
    assert result.retry_delay(6, rng=random.Random(1)) > 7.0


async def test_503_honours_retry_after_as_an_http_date(hook: HookServer, client: httpx.AsyncClient) -> None:
    now = float(int(time.time()))
    when = email.utils.formatdate(now + 120, usegmt=True)
    gateway = WebhookGateway(
        f"{hook.base_url}/status/503",
        SECRET,
        timeout=5,
        client=client,
        clock=lambda: now,
    )
    gateway.url = str(httpx.URL(gateway.url, params={"retry_after": when}))
    result = await gateway.send(_sms())
    assert (result.outcome, result.status, result.retry_after) == ("retryable", 503, 120.0)
    assert hook.requests[0].signature_ok


async def test_retry_after_is_ignored_on_other_statuses(hook: HookServer, client: httpx.AsyncClient) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/500?retry_after=7", SECRET, timeout=5, client=client)
    assert (await gateway.send(_sms())).retry_after is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422])
async def test_other_4xx_are_permanent_and_the_error_holds_no_personal_data(
    hook: HookServer, client: httpx.AsyncClient, status: int
) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/{status}", SECRET, timeout=5, client=client)
    result = await gateway.send(_mailbox())
    assert (result.outcome, result.status) == ("permanent", status)
    assert result.error is not None
    assert RECIPIENT.personnummer not in result.error
    assert "rejected" not in result.error  # nothing from the response body
    assert len(result.error) < 60


async def test_a_redirect_is_permanent_and_not_followed(hook: HookServer, client: httpx.AsyncClient) -> None:
    async with httpx.AsyncClient(follow_redirects=True) as following:
        gateway = WebhookGateway(f"{hook.base_url}/redirect", SECRET, timeout=5, client=following)
        result = await gateway.send(_sms())
    assert (result.outcome, result.status) == ("permanent", 307)
    assert [s.path for s in hook.requests] == ["/redirect"]


async def test_a_slow_gateway_times_out_as_retryable(hook: HookServer, client: httpx.AsyncClient) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/slow", SECRET, timeout=0.3, client=client)
    started = time.monotonic()
    result = await gateway.send(_sms())
    elapsed = time.monotonic() - started
    assert result == DeliveryResult("retryable", None, "timeout")
    assert elapsed < 2.0
    assert len(hook.requests) == 1


async def test_a_refused_connection_is_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = WebhookGateway(f"http://127.0.0.1:{port}/hook", SECRET, timeout=2, client=client)
    result = await gateway.send(_sms())
    assert (result.outcome, result.status, result.error) == ("retryable", None, "ConnectError")


async def test_the_gateway_can_own_its_client(hook: HookServer) -> None:
    async with WebhookGateway(f"{hook.base_url}/status/200", SECRET, timeout=5) as gateway:
        assert (await gateway.send(_sms())).ok
    assert hook.requests[0].signature_ok


async def test_a_different_secret_does_not_verify(hook: HookServer, client: httpx.AsyncClient) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/200", b"some-other-secret", timeout=5, client=client)
    await gateway.send(_sms())
    assert not hook.requests[0].signature_ok


async def test_a_tampered_request_fails_verification(hook: HookServer, client: httpx.AsyncClient) -> None:
    gateway = WebhookGateway(f"{hook.base_url}/status/200", SECRET, timeout=5, client=client)
    await gateway.send(_sms())
    [seen] = hook.requests
    ts, sig, body = (
        seen.headers["x-halsosamtal-timestamp"],
        seen.headers["x-halsosamtal-signature"],
        seen.body,
    )
    assert verify_signature(SECRET, ts, body, sig)
    tampered = body.replace(b"+46701234567", b"+46709999999")
    assert tampered != body
    assert not verify_signature(SECRET, ts, tampered, sig)
    assert not verify_signature(SECRET, str(int(ts) + 1), body, sig)
    assert not verify_signature(SECRET, ts, body, sig[:-1] + ("0" if sig[-1] != "0" else "1"))
    # Re-serialised JSON is not the raw body the signature covers.
    reserialised = json.dumps(json.loads(body)).encode()
    assert not verify_signature(SECRET, ts, reserialised, sig)


def test_an_old_or_future_timestamp_fails_verification() -> None:
    body = b'{"message_id":"1"}'
    now = 1_800_000_000
    for ts, ok in ((now, True), (now - 300, True), (now - 301, False), (now + 301, False)):
        assert verify_signature(SECRET, str(ts), body, signature(SECRET, ts, body), now=now) is ok
    assert verify_signature(SECRET, str(now - 1000), body, signature(SECRET, now - 1000, body), 2000, now=now)


@pytest.mark.parametrize(
    ("timestamp", "header"),
    [(None, "sha256=00"), ("1800000000", None), ("", ""), ("abc", "sha256=00"), ("١٢٣", "sha256=00")],
)
def test_malformed_signature_input_is_simply_invalid(timestamp: str | None, header: str | None) -> None:
    assert not verify_signature(SECRET, timestamp, b"{}", header, now=1_800_000_000)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a":1}'
    expected = hmac.new(SECRET, b"1800000000." + body, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_800_000_000, body) == f"sha256={expected}"


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "ok"),
        (204, "ok"),
        (299, "ok"),
        (301, "permanent"),
        (400, "permanent"),
        (404, "permanent"),
        (408, "retryable"),
        (418, "permanent"),
        (429, "retryable"),
        (500, "retryable"),
        (503, "retryable"),
        (599, "retryable"),
    ],
)
def test_classify(status: int, outcome: str) -> None:
    assert classify(status) == outcome


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("soon", None),
        ("-5", None),
        ("99999999", 86_400.0),
        ("Thu, 01 Jan 2027 00:01:00 GMT", 60.0),
        ("Wed, 31 Dec 2026 23:59:00 GMT", 0.0),  # in the past: now
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    now = dt.datetime(2027, 1, 1, tzinfo=dt.UTC).timestamp()
    assert parse_retry_after(value, now) == seconds


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    rng = random.Random(42)
    for attempt in range(1, 40):
        ceiling = min(BACKOFF_CAP_S, 30.0 * 2 ** (attempt - 1))
        for _ in range(20):
            delay = backoff(attempt, rng=rng)
            assert ceiling / 2 <= delay <= ceiling
    assert backoff(10_000, rng=rng) <= BACKOFF_CAP_S
    assert len({backoff(3, rng=rng) for _ in range(20)}) > 1, "no jitter"
    low = [backoff(1, rng=random.Random(seed)) for seed in range(50)]
    high = [backoff(5, rng=random.Random(seed)) for seed in range(50)]
    assert max(low) < min(high)


def test_backoff_starts_at_attempt_one() -> None:
    with pytest.raises(ValueError, match="attempt"):
        backoff(0)


@pytest.mark.parametrize(
    "url",
    ["http://gateway.example.se/hook", "ftp://127.0.0.1/hook", "http://10.0.0.5/hook"],
)
def test_personal_data_goes_over_https_only(url: str) -> None:
    with pytest.raises(ValueError, match="https"):
        WebhookGateway(url, SECRET)


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="secret"):
        WebhookGateway("https://gateway.example.se/hook", b"")


def test_the_gateway_repr_hides_the_secret() -> None:
    assert SECRET.decode() not in repr(WebhookGateway("https://gateway.example.se/hook", SECRET))


def test_an_sms_without_a_mobile_number_is_undeliverable() -> None:
    with pytest.raises(Undeliverable) as caught:
        OutgoingMessage.from_rendered(
            "1",
            replace(RECIPIENT, phone="08-123 456 78"),
            "sms",
            render("invitation", "short", "sv", CONTEXT),
        )
    assert caught.value.reason == "no_phone"


def test_a_mailbox_message_without_a_mailbox_is_undeliverable() -> None:
    with pytest.raises(Undeliverable) as caught:
        OutgoingMessage.from_rendered(
            "1",
            replace(RECIPIENT, digital_mailbox=False),
            "digital_mailbox",
            render("invitation", "long", "sv", CONTEXT),
        )
    assert caught.value.reason == "no_digital_mailbox"


def test_the_wrong_form_for_a_channel_is_refused() -> None:
    with pytest.raises(ValueError, match="no subject"):
        OutgoingMessage.from_rendered("1", RECIPIENT, "sms", render("invitation", "long", "sv", CONTEXT))
    with pytest.raises(ValueError, match="needs a subject"):
        OutgoingMessage.from_rendered(
            "1", RECIPIENT, "digital_mailbox", render("invitation", "short", "sv", CONTEXT)
        )


@pytest.mark.parametrize("message_id", ["", "a b", "1\r\nX-Evil: 1", "x" * 201])
def test_a_message_id_must_be_a_safe_header_token(message_id: str) -> None:
    with pytest.raises(ValueError, match="message_id"):
        _sms(message_id)


def test_a_message_shows_no_personal_data_in_its_repr() -> None:
    text = repr(_sms()) + repr(_mailbox())
    assert RECIPIENT.personnummer not in text
    assert "070" not in text
    assert "Vårdcentralen" not in text  # not even the text
