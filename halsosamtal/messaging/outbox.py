"""The message outbox: prepare and store messages, deliver queued ones, list and requeue failures.

The messaging service knows messages, channels, templates, print files and the webhook; it
knows no feature's tables. A feature writes its messages as planned rows and releases them
(``halsosamtal.invitations.release`` chooses each one's channel and text with :func:`prepare`
and stores it with :func:`store_renderings`); recipients' contact routes come from the register
(``halsosamtal.residents.contacts``) when a message is delivered.

A message's life (``messages.status``)::

    planned -> queued -> sending -> sent
                           sending -> queued again (retryable, after a backoff) or failed
    planned -> failed      (no channel reaches the resident, e.g. no_address)
    planned or queued -> cancelled   (what it was about closed before it went out: the feature
                                      that closes it cancels its messages in the same change)
    failed -> queued       (an operator's retry; through release again if it never had a channel)

**Delivery** (every minute): queued messages that are due are *claimed*: set to ``sending``
with a lease (``next_attempt_at`` = now + ``delivery_lease_s``) and one more attempt, and the
claim is committed before anything leaves the service. Then each is delivered and the outcome
recorded, guarded by ``status = 'sending' AND attempts = <the claim's attempt>``, so a slow
worker whose lease was taken over cannot overwrite the newer attempt's outcome. A worker that
dies mid-send leaves the message ``sending``; when the lease runs out another pass claims it
again and sends it with the same id, which the gateway dedupes (``Idempotency-Key``). So a
message is never lost, and a retry is never a second message.

**Gateways** (``settings.messaging_gateway``): with ``letters`` no electronic route exists, so
release chooses among letter channels only and every message is printed; with ``webhook``
digital mailbox and SMS go to the notification webhook and letters still go to the print file.

**Letters** go to one print file per day (Europe/Stockholm). A letter's day is fixed when it is
first claimed (its ``sent_at`` is set then, and kept if the claim is taken over), and the file
is rewritten whole from every letter of that day that is ``sending`` or ``sent``, under a
per-day advisory lock, so concurrent writers never drop each other's letters and a rewrite after
a crash gives the identical file (``letters.write_print_file`` then leaves it untouched). The
print file of a day is complete at the end of that day; a pickup before then sees a file that
may still grow. For a letter, ``sent`` means "in the print file".
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, cast

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import DateTime, bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from halsosamtal.core import clock
from halsosamtal.core.clock import STOCKHOLM, day_bounds
from halsosamtal.core.database import session_scope
from halsosamtal.core.errors import Conflict, InvalidInput, NotFound
from halsosamtal.core.http import LocalTime, Page, decode_id_cursor, encode_id_cursor
from halsosamtal.core.settings import Settings
from halsosamtal.messaging.channels import Channel, Undeliverable, choose_channel
from halsosamtal.messaging.letters import PrintedLetter, write_print_file
from halsosamtal.messaging.models import CHANNELS, DeliveryAttempt, Message
from halsosamtal.messaging.templates import (
    Form,
    MessageContext,
    MessageKind,
    RenderedMessage,
    note_language,
    render,
    resolve_language,
)
from halsosamtal.messaging.webhook import OutgoingMessage, WebhookGateway, backoff
from halsosamtal.residents import contacts
from halsosamtal.residents.contacts import Recipient

log = logging.getLogger("halsosamtal.messaging")

RELEASE_CHUNK = 2000
"""Messages rendered and queued per transaction."""
DELIVERY_CHUNK = 20
"""Electronic messages claimed at once: with ``DELIVERY_CONCURRENCY`` sends in flight and a 10 s
timeout a chunk takes at most ~20 s, well inside the lease (30 s at the least). Each outcome is
recorded as it comes, so a worker killed mid-chunk leaves at most the sends in flight to be made
again; the chunk's unsent rest waits for its lease to run out."""
LETTER_CHUNK = 5000
"""Letters claimed at once: each claim rewrites the day's print file, so take many at a time."""
DELIVERY_CONCURRENCY = 10

ACTIVE_INVITATION_STATUSES = ("planned", "open")
INVITATION_KINDS = ("invitation", "reminder")
"""Messages that ask the resident to book: sent only while the invitation is planned or open.
The booking kinds are about a time and go out whatever the invitation's status is now."""
CONFIRMATION_KINDS: tuple[MessageKind, ...] = ("booking_confirmation", "booking_moved", "booking_cancelled")
"""Sent within a minute of the change, not with the morning's release."""
LETTER_CHANNELS: tuple[Channel, ...] = ("letter", "letter_protected")
_LETTERS_LOCK_CLASS = 0x4C455454  # 'LETT': the advisory-lock namespace of print-file days


# --- Errors -------------------------------------------------------------------------------------


class MessageNotFound(NotFound):
    code = "message-not-found"


class MessageNotFailed(Conflict):
    code = "message-not-failed"
    title = "The message has not failed"


class MessageNotRetryable(Conflict):
    code = "message-not-retryable"
    title = "The message may not be sent any more"


# --- Release ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rendering:
    """A message ready to store: queued on a channel, or failed because none reaches them."""

    status: Literal["queued", "failed"]
    channel: Channel | None
    language: str
    template: str
    subject: str | None
    body: str
    error: str | None = None


Renderer = Callable[[MessageKind, Form, str, MessageContext], RenderedMessage]


def cached_renderer(settings: Settings) -> Renderer:
    """``templates.render`` with the settings' override directory, remembering each text.

    A release renders the same few texts over and over: they depend on the unit, year, age,
    language and reminder number, not on who reads them. Meant for one chunk, so a template
    edited on disk is picked up by the next one."""
    cache: dict[tuple[MessageKind, Form, str, MessageContext], RenderedMessage] = {}

    def cached(kind: MessageKind, form: Form, language: str, context: MessageContext) -> RenderedMessage:
        # A resident of another language may get a note in it under the Swedish text.
        key = (kind, form, note_language(language) or resolve_language(language), context)
        found = cache.get(key)
        if found is None:
            found = cache[key] = render(kind, form, language, context, settings.template_dir)
        return found

    return cached


def prepare(
    kind: MessageKind,
    recipient: Recipient,
    context: MessageContext,
    settings: Settings,
    renderer: Renderer | None = None,
) -> Rendering:
    """Choose the channel for one message and render its text for that channel.

    The short (SMS) form is rendered first because whether SMS is possible depends on whether
    it fits. With the ``letters`` gateway the recipient's electronic routes are ignored: nothing
    could carry them. Undeliverable -> ``failed`` with the reason (e.g. ``no_address``) and the
    letter text, so an operator sees what would have been sent. Raises ``MessageTemplateError``.
    """
    draw = renderer or cached_renderer(settings)
    chooser = recipient
    if settings.messaging_gateway == "letters":
        chooser = dataclasses.replace(recipient, digital_mailbox=False, phone=None)
    short = draw(kind, "short", recipient.language, context)
    try:
        # An appointment reminder is read on the day: SMS first when the resident has a mobile.
        channel = choose_channel(chooser, short.body, prefer_sms=kind == "appointment_reminder")
    except Undeliverable as exc:
        long = draw(kind, "long", recipient.language, context)
        return Rendering("failed", None, long.language, long.template, long.subject, long.body, exc.reason)
    chosen = short if channel == "sms" else draw(kind, "long", recipient.language, context)
    return Rendering("queued", channel, chosen.language, chosen.template, chosen.subject, chosen.body)


_APPLY_RELEASE = text("""
UPDATE messages m
SET status = v.status, channel = v.channel, language = v.language, template = v.template,
    subject = v.subject, body = v.body, last_error = v.last_error, next_attempt_at = NULL,
    queued_at = CASE WHEN v.status = 'queued' THEN CAST(:at AS timestamptz) END
FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]), CAST(:channels AS text[]),
            CAST(:languages AS text[]), CAST(:templates AS text[]), CAST(:subjects AS text[]),
            CAST(:bodies AS text[]), CAST(:errors AS text[]))
     AS v(id, status, channel, language, template, subject, body, last_error)
WHERE m.id = v.id AND m.status = 'planned'
""")


async def store_renderings(
    session: AsyncSession, stored: Sequence[tuple[int, Rendering]], *, at: datetime
) -> None:
    """Store prepared messages: each planned message becomes queued on its channel with its
    text, or failed with the reason no channel reaches the resident."""
    if not stored:
        return
    await session.execute(
        _APPLY_RELEASE,
        {
            "at": at,
            "ids": [i for i, _ in stored],
            "statuses": [r.status for _, r in stored],
            "channels": [r.channel for _, r in stored],
            "languages": [r.language for _, r in stored],
            "templates": [r.template for _, r in stored],
            "subjects": [r.subject for _, r in stored],
            "bodies": [r.body for _, r in stored],
            "errors": [r.error for _, r in stored],
        },
    )


async def requeue_failed(session: AsyncSession, message_id: int) -> Message:
    """Lock a failed message for a retry (404 ``message-not-found``, 409 ``message-not-failed``)
    and, when it had a channel, queue it again as it is (same id, same text; its attempts are
    kept, so this is one more try). One that never had a channel is made planned again, for the
    caller to release anew. The caller has locked what the message belongs to first."""
    message = await session.get(Message, message_id, with_for_update=True, populate_existing=True)
    if message is None:
        raise MessageNotFound(f"no message {message_id}")
    if message.status != "failed":
        raise MessageNotFailed(
            f"message {message_id} is {message.status}; only a failed message can be retried",
            status_now=message.status,
        )
    await session.execute(
        text(
            "UPDATE messages SET status = CASE WHEN channel IS NULL THEN 'planned' ELSE 'queued' END, "
            "next_attempt_at = NULL, last_error = CASE WHEN channel IS NULL THEN NULL ELSE last_error END "
            "WHERE id = :id AND status = 'failed'"
        ),
        {"id": message_id},
    )
    await session.refresh(message)
    return message


# --- Delivery -----------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What a delivery pass did."""

    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    print_files: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message claimed for delivery, with the attempt number that fences its outcome."""

    id: int
    kind: str
    channel: str
    language: str
    subject: str | None
    body: str
    attempts: int
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one attempt, as stored: ``sent``, ``retry`` (queued again) or ``failed``."""

    message_id: int
    attempts: int
    gateway: str
    outcome: Literal["sent", "retry", "failed"]
    http_status: int | None = None
    error: str | None = None
    delay_s: float = 0.0


# Due messages are claimed: 'sending', one more attempt, and a lease until another pass may take
# them over. A message left 'sending' by a dead worker is claimed again once its lease ran out.
# (A message whose invitation closed meanwhile was cancelled by the change that closed it.)
_CLAIM = text("""
WITH due AS (
  SELECT m.id FROM messages m
  WHERE ((m.status = 'queued' AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= :now))
         OR (m.status = 'sending' AND m.next_attempt_at <= :now))
    AND (m.channel IN ('letter', 'letter_protected')) = :letters
  ORDER BY m.id
  LIMIT :limit
  FOR UPDATE OF m SKIP LOCKED
)
UPDATE messages m
SET status = 'sending',
    attempts = m.attempts + 1,
    next_attempt_at = CAST(:now AS timestamptz) + make_interval(secs => :lease),
    -- A letter's print day is fixed at its first claim and kept when the claim is taken over.
    sent_at = CASE WHEN m.channel IN ('letter', 'letter_protected') THEN coalesce(m.sent_at, :now)
                   ELSE m.sent_at END
FROM due WHERE m.id = due.id
RETURNING m.id, m.kind, m.channel, m.language, m.subject, m.body, m.attempts, m.sent_at
""")

_APPLY_OUTCOMES = text("""
WITH v AS (
  SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:attempts AS int[]), CAST(:outcomes AS text[]),
                       CAST(:http AS int[]), CAST(:errors AS text[]), CAST(:delays AS float8[]),
                       CAST(:gateways AS text[]))
    AS v(id, attempts, outcome, http_status, error, delay, gateway)
), done AS (
  UPDATE messages m
  SET status = CASE v.outcome WHEN 'sent' THEN 'sent' WHEN 'retry' THEN 'queued' ELSE 'failed' END,
      sent_at = CASE WHEN v.outcome = 'sent' THEN coalesce(m.sent_at, CAST(:now AS timestamptz)) END,
      next_attempt_at = CASE WHEN v.outcome = 'retry'
                             THEN CAST(:now AS timestamptz) + make_interval(secs => v.delay) END,
      last_error = CASE WHEN v.outcome = 'sent' THEN NULL ELSE v.error END
  FROM v
  -- Only the attempt that holds the claim may finish it.
  WHERE m.id = v.id AND m.status = 'sending' AND m.attempts = v.attempts
  RETURNING m.id
)
INSERT INTO delivery_attempts (message_id, gateway, outcome, http_status, error, at)
SELECT v.id, v.gateway, v.outcome, v.http_status, v.error, CAST(:now AS timestamptz) FROM v
""")

_GATHER_LETTERS = select(Message.id, Message.subject, Message.body, Message.resident_id).where(
    Message.channel.in_(LETTER_CHANNELS),
    Message.status.in_(("sending", "sent")),
    Message.sent_at >= bindparam("start", type_=DateTime(timezone=True)),
    Message.sent_at < bindparam("end", type_=DateTime(timezone=True)),
)


async def claim(session: AsyncSession, *, letters: bool, limit: int, lease_s: int) -> list[Claimed]:
    """Claim due messages (letters or electronic ones)."""
    rows = (
        await session.execute(
            _CLAIM, {"letters": letters, "limit": limit, "lease": float(lease_s), "now": clock.now()}
        )
    ).all()
    return [
        Claimed(r.id, r.kind, r.channel, r.language or "sv", r.subject, r.body, r.attempts, r.sent_at)
        for r in rows
    ]


async def record_outcomes(session: AsyncSession, outcomes: Sequence[Outcome]) -> None:
    """Store outcomes (fenced by attempt) and append one delivery attempt row for each."""
    if not outcomes:
        return
    await session.execute(
        _APPLY_OUTCOMES,
        {
            "ids": [o.message_id for o in outcomes],
            "attempts": [o.attempts for o in outcomes],
            "outcomes": [o.outcome for o in outcomes],
            "http": [o.http_status for o in outcomes],
            "errors": [o.error for o in outcomes],
            "delays": [o.delay_s for o in outcomes],
            "gateways": [o.gateway for o in outcomes],
            "now": clock.now(),
        },
    )


async def _recipients(session: AsyncSession, message_ids: Sequence[int]) -> dict[int, Recipient]:
    """Each message's recipient, from the register as it is now (by message id)."""
    rows = (
        await session.execute(
            select(Message.id, Message.resident_id).where(Message.id.in_(list(message_ids)))
        )
    ).all()
    found = await contacts.recipients(session, (r.resident_id for r in rows))
    return {r.id: found[r.resident_id] for r in rows if r.resident_id in found}


def _failure(
    item: Claimed,
    gateway: str,
    settings: Settings,
    *,
    retryable: bool,
    error: str,
    http_status: int | None = None,
    delay_s: float = 0.0,
) -> Outcome:
    """``retry`` after ``delay_s`` while tries are left, else ``failed``."""
    if retryable and item.attempts < settings.delivery_max_attempts:
        return Outcome(item.id, item.attempts, gateway, "retry", http_status, error, delay_s)
    return Outcome(item.id, item.attempts, gateway, "failed", http_status, error)


async def _send_electronic(
    items: Sequence[Claimed],
    recipients: dict[int, Recipient],
    gateway: WebhookGateway | None,
    settings: Settings,
    record: Callable[[Outcome], Awaitable[None]],
) -> list[Outcome]:
    """Send each claimed message and ``record`` its outcome at once, before the next send in its
    place starts: what a killed worker sent is known, except the sends in flight."""
    semaphore = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one(item: Claimed) -> Outcome:
        # The slot is held until the outcome is stored: at most DELIVERY_CONCURRENCY messages
        # are ever sent and not yet recorded.
        async with semaphore:
            outcome = await attempt(item)
            await record(outcome)
        return outcome

    async def attempt(item: Claimed) -> Outcome:
        if gateway is None:
            # Released while the webhook gateway was configured, delivered after it was not:
            # fail visibly; an operator retries once the gateway is back.
            return _failure(
                item, "webhook", settings, retryable=False, error="webhook gateway not configured"
            )
        recipient = recipients.get(item.id)
        if recipient is None:
            return _failure(item, "webhook", settings, retryable=False, error="resident not in the register")
        try:
            message = OutgoingMessage(
                message_id=str(item.id),
                kind=cast(MessageKind, item.kind),
                channel=cast(Any, item.channel),
                language=resolve_language(item.language),
                recipient=recipient,
                body=item.body,
                subject=item.subject,
            )
        except Undeliverable as exc:  # the register changed since release (no mailbox, no phone)
            return _failure(item, "webhook", settings, retryable=False, error=exc.reason)
        except ValueError as exc:
            return _failure(item, "webhook", settings, retryable=False, error=str(exc)[:200])
        result = await gateway.send(message)
        if result.ok:
            return Outcome(item.id, item.attempts, "webhook", "sent", http_status=result.status)
        return _failure(
            item,
            "webhook",
            settings,
            retryable=result.outcome == "retryable",
            error=result.error or result.outcome,
            http_status=result.status,
            delay_s=result.retry_delay(item.attempts),
        )

    return list(await asyncio.gather(*(one(item) for item in items)))


async def _write_letters(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    items: Sequence[Claimed],
    report: DeliveryReport,
) -> list[Outcome]:
    """Put claimed letters in their day's print file and record the outcomes, day by day."""
    by_day: dict[date, list[Claimed]] = defaultdict(list)
    for item in items:
        assert item.sent_at is not None  # set by the claim
        by_day[item.sent_at.astimezone(STOCKHOLM).date()].append(item)
    outcomes: list[Outcome] = []
    for day, claimed in sorted(by_day.items()):
        ours = {item.id: item for item in claimed}
        day_outcomes: list[Outcome] = []
        async with session_scope(sessionmaker) as session:
            # One writer per day at a time: each gathers after the previous one committed, so
            # the file only grows and no writer drops letters another has just marked sent.
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, :obj)"),
                {"cls": _LETTERS_LOCK_CLASS, "obj": day.toordinal()},
            )
            start, end = day_bounds(day)
            rows = (await session.execute(_GATHER_LETTERS, {"start": start, "end": end})).all()
            found = await contacts.recipients(session, (r.resident_id for r in rows))
            letters: list[PrintedLetter] = []
            refused: set[int] = set()
            for row in rows:
                recipient = found.get(row.resident_id)
                if recipient is None:
                    continue  # not in the register: the claimed ones fail below
                try:
                    letters.append(
                        PrintedLetter.for_recipient(str(row.id), recipient, row.subject or "", row.body or "")
                    )
                except ValueError as exc:
                    # E.g. the address left the register since release: nothing to print on.
                    refused.add(row.id)
                    if row.id in ours:
                        error = "no_address" if "address" in str(exc) else str(exc)[:200]
                        day_outcomes.append(
                            _failure(ours[row.id], "letters", settings, retryable=False, error=error)
                        )
                    else:
                        log.warning("letter %s left out of the print file of %s: %s", row.id, day, exc)
            printed = {int(letter.message_id) for letter in letters}
            day_outcomes += [
                _failure(item, "letters", settings, retryable=False, error="resident not in the register")
                for item in claimed
                if item.id not in printed and item.id not in refused
            ]
            try:
                path = await asyncio.to_thread(_write_print_file, settings.letters_directory, day, letters)
            except OSError as exc:
                log.error("print file for %s not written: %s", day, exc.strerror or type(exc).__name__)
                error = f"print file not written: {exc.strerror or type(exc).__name__}"
                day_outcomes += [
                    _failure(
                        item, "letters", settings, retryable=True, error=error, delay_s=backoff(item.attempts)
                    )
                    for item in claimed
                    if item.id in printed
                ]
            else:
                if str(path) not in report.print_files:
                    report.print_files.append(str(path))
                day_outcomes += [
                    Outcome(item.id, item.attempts, "letters", "sent")
                    for item in claimed
                    if item.id in printed
                ]
            await record_outcomes(session, day_outcomes)
        outcomes += day_outcomes
    return outcomes


def _write_print_file(directory: Path, day: date, letters: list[PrintedLetter]) -> Path:
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # readable by us only: addresses
    return write_print_file(directory, day, letters)


def _gateway(settings: Settings, client: httpx.AsyncClient | None) -> WebhookGateway | None:
    if settings.messaging_gateway != "webhook" or not settings.webhook_url or settings.webhook_secret is None:
        return None
    return WebhookGateway(
        settings.webhook_url,
        settings.webhook_secret.get_secret_value().encode("utf-8"),
        timeout=settings.webhook_timeout_s,
        client=client,
    )


def _tally(report: DeliveryReport, outcomes: Sequence[Outcome]) -> None:
    for o in outcomes:
        if o.outcome == "sent":
            report.sent += 1
        elif o.outcome == "retry":
            report.retried += 1
        else:
            report.failed += 1


async def due_for_delivery(session: AsyncSession) -> dict[str, int]:
    """What a delivery pass would send now, without claiming anything: due messages per channel."""
    rows = await session.execute(
        text("""
SELECT m.channel, count(*) AS n FROM messages m
WHERE (m.status = 'queued' AND (m.next_attempt_at IS NULL OR m.next_attempt_at <= :now))
   OR (m.status = 'sending' AND m.next_attempt_at <= :now)
GROUP BY m.channel ORDER BY m.channel
"""),
        {"now": clock.now()},
    )
    return {str(r.channel): int(r.n) for r in rows}


async def deliver_due(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    client: httpx.AsyncClient | None = None,
    time_budget_s: float | None = None,
    letter_chunk: int = LETTER_CHUNK,
    chunk: int = DELIVERY_CHUNK,
) -> DeliveryReport:
    """One delivery pass: claim and deliver due messages until none is left (or the time budget
    is spent; the next pass goes on). Letters first, in large claims, then electronic ones."""
    report = DeliveryReport()
    deadline = None if time_budget_s is None else time.monotonic() + time_budget_s
    gateway = _gateway(settings, client)
    try:
        for letters in (True, False):
            while deadline is None or time.monotonic() < deadline:
                async with session_scope(sessionmaker) as session:
                    claimed = await claim(
                        session,
                        letters=letters,
                        limit=letter_chunk if letters else chunk,
                        lease_s=settings.delivery_lease_s,
                    )
                    recipients = (
                        await _recipients(session, [c.id for c in claimed]) if claimed and not letters else {}
                    )
                report.claimed += len(claimed)
                if not claimed:
                    break
                if letters:
                    outcomes = await _write_letters(sessionmaker, settings, claimed, report)
                else:

                    async def record(outcome: Outcome) -> None:
                        async with session_scope(sessionmaker) as session:
                            await record_outcomes(session, [outcome])

                    outcomes = await _send_electronic(claimed, recipients, gateway, settings, record)
                _tally(report, outcomes)
    finally:
        if gateway is not None:
            await gateway.aclose()
    log.log(
        logging.INFO if report.claimed else logging.DEBUG,
        "delivery claimed=%s sent=%s retried=%s failed=%s",
        report.claimed,
        report.sent,
        report.retried,
        report.failed,
    )
    return report


# --- Failures and retry -------------------------------------------------------------------------


class MessageOut(BaseModel):
    """A message as operators see it: its state and delivery, never its text or the address."""

    id: int
    kind: str
    sequence: int = Field(description="Reminder number; 0 for other kinds")
    status: str = Field(description="planned, queued, sending, sent, failed or cancelled")
    channel: str | None = Field(description="Null when no channel could reach the resident")
    resident_id: int
    invitation_id: int | None
    send_on: date
    attempts: int
    next_attempt_at: LocalTime | None
    last_error: str | None = Field(description="A short fixed phrase, e.g. no_address, HTTP 400 Bad Request")
    queued_at: LocalTime | None
    sent_at: LocalTime | None
    last_attempt_at: LocalTime | None = Field(None, description="When delivery was last tried")


_LAST_ATTEMPT = (
    select(DeliveryAttempt.at)
    .where(DeliveryAttempt.message_id == Message.id)
    .order_by(DeliveryAttempt.id.desc())
    .limit(1)
    .correlate(Message)
    .scalar_subquery()
)


def _message_out(m: Message, last_attempt_at: datetime | None) -> MessageOut:
    return MessageOut(
        id=m.id,
        kind=m.kind,
        sequence=m.sequence,
        status=m.status,
        channel=m.channel,
        resident_id=m.resident_id,
        invitation_id=m.invitation_id,
        send_on=m.send_on,
        attempts=m.attempts,
        next_attempt_at=m.next_attempt_at,
        last_error=m.last_error,
        queued_at=m.queued_at,
        sent_at=m.sent_at,
        last_attempt_at=last_attempt_at,
    )


async def get_message(session: AsyncSession, message_id: int) -> MessageOut:
    """One message's state (404 ``message-not-found``)."""
    row = (
        await session.execute(
            select(Message, _LAST_ATTEMPT.label("last_attempt_at"))
            .where(Message.id == message_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise MessageNotFound(f"no message {message_id}")
    return _message_out(row.Message, row.last_attempt_at)


async def list_failed(
    session: AsyncSession,
    *,
    kind: str | None = None,
    channel: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[MessageOut]:
    """Failed messages, newest first, a page at a time (keyset on id)."""
    query = (
        select(Message, _LAST_ATTEMPT.label("last_attempt_at"))
        .where(Message.status == "failed")
        .order_by(Message.id.desc())
        .limit(limit + 1)
    )
    if kind is not None:
        query = query.where(Message.kind == kind)
    if channel is not None:
        if channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
        query = query.where(Message.channel == channel)
    if (before := decode_id_cursor(cursor)) is not None:
        query = query.where(Message.id < before)
    rows = (await session.execute(query)).all()
    items = [_message_out(r.Message, r.last_attempt_at) for r in rows[:limit]]
    next_cursor = encode_id_cursor(items[-1].id) if len(rows) > limit else None
    return Page[MessageOut](items=items, next_cursor=next_cursor)
