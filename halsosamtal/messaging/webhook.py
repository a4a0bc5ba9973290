"""Hand electronic messages (SMS, digital mailbox) to the notification gateway over a webhook.

Each message is one signed JSON POST:

* ``Idempotency-Key: <message id>``: the outbox retries, and a job may run twice (arq says so);
  the gateway uses the key to send a message at most once.
* ``X-Halsosamtal-Timestamp: <unix seconds>`` and
  ``X-Halsosamtal-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>``:
  the receiver checks both with ``verify_signature``; the timestamp inside the MAC stops replays
  of an old request beyond the tolerance.

The body carries only what the channel needs to reach the resident: the phone number for SMS,
the personnummer for a digital mailbox (mailboxes are addressed by it), never an address.

``send`` never raises for delivery problems: it returns a ``DeliveryResult`` that says whether
the outbox should mark the message sent, retry it later, or give up.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from http import HTTPStatus
from types import TracebackType
from typing import Literal

import httpx
import orjson

from halsosamtal.messaging.channels import ElectronicChannel, Undeliverable
from halsosamtal.messaging.sms import sms_number
from halsosamtal.messaging.templates import Language, MessageKind, RenderedMessage
from halsosamtal.residents.contacts import Recipient

log = logging.getLogger("halsosamtal.messaging")

SIGNATURE_HEADER = "X-Halsosamtal-Signature"
TIMESTAMP_HEADER = "X-Halsosamtal-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
MAX_RETRY_AFTER_S = 86_400.0
"""A Retry-After beyond a day is a misconfigured gateway; waiting longer would hide it."""

Outcome = Literal["ok", "retryable", "permanent"]

_MESSAGE_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def backoff(
    attempt: int,
    *,
    base: float = BACKOFF_BASE_S,
    cap: float = BACKOFF_CAP_S,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = after the first failure).

    Exponential (base, 2 x base, 4 x base, ...) up to ``cap``, with "equal jitter": a random
    point in the upper half of that window. The jitter spreads a burst of failed messages so
    they do not all hit a recovering gateway at once; keeping the lower half means a retry is
    never immediate.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    # Jitter needs spread, not secrecy: the standard generator is the right tool here.
    fraction = (rng or random).random()
    return ceiling / 2 + fraction * ceiling / 2


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What happened to one send.

    ``error`` is a short fixed phrase (``HTTP 503 Service Unavailable``, ``timeout``,
    ``ConnectError``), never text from the response body, which may echo personal data.
    ``retry_after`` is the delay the gateway asked for (``Retry-After`` on 429/503), in seconds.
    """

    outcome: Outcome
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def retry_delay(self, attempt: int, *, rng: random.Random | None = None) -> float:
        """Seconds until the next try: our backoff, or longer if the gateway asked for longer."""
        return max(backoff(attempt, rng=rng), self.retry_after or 0.0)


def classify(status: int) -> Outcome:
    """2xx: ok. 408, 429 and 5xx: retryable. Anything else (other 4xx, 3xx): permanent.

    A redirect is permanent because we do not follow it: re-posting personal data to wherever
    a gateway points would be a leak, and the configured URL is wrong either way.
    """
    if 200 <= status < 300:
        return "ok"
    if status in (408, 429) or 500 <= status < 600:
        return "retryable"
    return "permanent"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` that a ``Retry-After`` header asks for (delta-seconds or HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # an HTTP-date is always GMT
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


def _status_error(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def signature(secret: bytes, timestamp: int | str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 with ``secret`` over ``b"<timestamp>." + body``."""
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: bytes,
    timestamp: str | None,
    body: bytes,
    header: str | None,
    tolerance_s: float = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when ``header`` signs ``body`` at ``timestamp`` and the timestamp is recent enough.

    For receivers (and our tests): pass the raw request body, not re-serialised JSON. Never
    raises on malformed input; anything unexpected is simply not a valid signature.
    """
    if not timestamp or not header or not timestamp.isascii() or not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body).encode("ascii"), header.encode("utf-8"))


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message for the gateway. Build it with ``from_rendered``.

    ``language`` is the language the text is in, which the gateway may use for its own
    wrapping. Construction checks that the channel can reach the recipient and raises
    ``Undeliverable`` otherwise, so the outbox can mark the message failed.
    """

    message_id: str
    kind: MessageKind
    channel: ElectronicChannel
    language: Language
    recipient: Recipient = field(repr=False)
    body: str = field(repr=False)
    subject: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not _MESSAGE_ID.fullmatch(self.message_id):
            # It goes into a header as the idempotency key: keep it to a safe token.
            raise ValueError("message_id must be 1-200 characters of A-Z a-z 0-9 . _ : -")
        if not self.body.strip():
            raise ValueError(f"message {self.message_id} has an empty body")
        if self.channel == "sms":
            if self.subject is not None:
                raise ValueError("an SMS has no subject")
            if sms_number(self.recipient.phone) is None:
                raise Undeliverable("no_phone", "the resident has no number an SMS can reach")
        elif self.channel == "digital_mailbox":
            if not self.subject:
                raise ValueError("a digital mailbox message needs a subject")
            if not self.recipient.digital_mailbox:
                raise Undeliverable("no_digital_mailbox", "the resident has no digital mailbox")
        else:
            raise ValueError(f"channel {self.channel!r} does not go through the webhook")

    @classmethod
    def from_rendered(
        cls,
        message_id: str,
        recipient: Recipient,
        channel: ElectronicChannel,
        rendered: RenderedMessage,
    ) -> OutgoingMessage:
        """The message for a rendered text (short form for SMS, long form for a mailbox)."""
        return cls(
            message_id=message_id,
            kind=rendered.kind,
            channel=channel,
            language=rendered.language,
            recipient=recipient,
            body=rendered.body,
            subject=rendered.subject,
        )

    def contact(self) -> dict[str, str]:
        """The recipient's contact for this channel, and nothing else."""
        if self.channel == "sms":
            number = sms_number(self.recipient.phone)
            assert number is not None  # checked in __post_init__
            return {"phone": number}
        return {"personnummer": self.recipient.personnummer}

    def payload(self) -> dict[str, object]:
        """The JSON body sent to the gateway."""
        return {
            "message_id": self.message_id,
            "kind": self.kind,
            "channel": self.channel,
            "language": self.language,
            "recipient": self.contact(),
            "subject": self.subject,
            "body": self.body,
        }


def _check_url(url: str) -> str:
    parsed = httpx.URL(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.host in _LOOPBACK_HOSTS):
        return url
    # The body holds personnummer and phone numbers: plain HTTP only to this machine.
    raise ValueError("webhook URL must be https (plain http only to a loopback address)")


class WebhookGateway:
    """Sends ``OutgoingMessage`` s to the gateway's webhook URL, signed with ``secret``.

    Pass a shared ``httpx.AsyncClient`` (the worker builds one at start-up) or let the gateway
    own one; use ``async with`` or ``aclose()`` to close an owned client. ``timeout`` bounds the
    whole request, not just each read: a gateway that trickles bytes still times out.
    """

    def __init__(
        self,
        url: str,
        secret: bytes,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("webhook secret must not be empty")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.url = _check_url(url)
        self._secret = secret
        self._timeout = timeout
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(follow_redirects=False)
        self._clock = clock

    def __repr__(self) -> str:
        return f"WebhookGateway(url={self.url!r}, timeout={self._timeout})"  # never the secret

    async def aclose(self) -> None:
        """Close the HTTP client if the gateway created it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> WebhookGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def send(self, message: OutgoingMessage) -> DeliveryResult:
        """POST one message and classify the answer (see ``classify``)."""
        body = orjson.dumps(message.payload())
        timestamp = int(self._clock())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: message.message_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: signature(self._secret, timestamp, body),
        }
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(
                    self.url,
                    content=body,
                    headers=headers,
                    timeout=self._timeout,
                    follow_redirects=False,
                )
        except (TimeoutError, httpx.TimeoutException):
            result = DeliveryResult("retryable", error="timeout")
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError) as exc:
            # Our request cannot be sent as built; trying again would fail the same way.
            result = DeliveryResult("permanent", error=type(exc).__name__)
        except httpx.TransportError as exc:  # refused, reset, DNS, a broken response: transient
            result = DeliveryResult("retryable", error=type(exc).__name__)
        else:
            status = response.status_code
            outcome = classify(status)
            retry_after = (
                parse_retry_after(response.headers.get("Retry-After"), self._clock())
                if status in (429, 503)
                else None
            )
            result = DeliveryResult(
                outcome,
                status=status,
                error=None if outcome == "ok" else _status_error(status),
                retry_after=retry_after,
            )
        log.log(
            logging.INFO if result.ok else logging.WARNING,
            "webhook message=%s kind=%s channel=%s outcome=%s status=%s error=%s",
            message.message_id,
            message.kind,
            message.channel,
            result.outcome,
            result.status,
            result.error,
        )
        return result
