"""``Idempotency-Key`` for POSTs: a replay returns the first answer and changes nothing.

EHR adapters and portals retry on network errors, so a write can arrive twice. A client that
sends ``Idempotency-Key: <its own unique value>`` gets, for every later request with the same
key, the stored status and body of the first one, marked ``Idempotent-Replayed: true``, and
nothing is done again. Rules (after the IETF draft "The Idempotency-Key HTTP Header Field"):

- Keys are the client's own: two API clients never see each other's.
- The same key with another method, path or body is a mistake in the client: 422
  ``idempotency-key-reused``, and nothing is done.
- An expected refusal (409, 422, 404 from a business rule) is an answer too: it is stored and
  replayed, so a retry never turns a refusal into a success behind the client's back. A
  malformed request (schema validation) or a server failure stores nothing; a retry runs again.
- The key row is written in the request's own transaction, before the work: a second request
  with the same key that arrives while the first is still running waits for it (the unique
  index makes it), then replays its answer. A first request that failed and rolled back leaves
  no key, so its retry runs.
- Keys are kept ``idempotency_ttl_hours`` (24 h by default); the worker deletes older ones.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import Header, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, SmallInteger, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base
from halsosamtal.core.errors import DomainError, InvalidInput
from halsosamtal.core.http import ProblemResponse, domain_problem

REPLAYED_HEADER = "Idempotent-Replayed"


class IdempotencyRecord(Base):
    """The first answer to each (client, Idempotency-Key)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    client_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    method: Mapped[str] = mapped_column(Text)
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(Text, comment="sha256 of method, path and body")
    status_code: Mapped[int | None] = mapped_column(SmallInteger, comment="Null while the first runs")
    response: Mapped[Any | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description=(
            "A value unique to this write, chosen by the client (a UUID). Repeating the request "
            "with the same key returns the first answer (with `Idempotent-Replayed: true`) and "
            "changes nothing; the same key with another body is a 422 `idempotency-key-reused`. "
            "Kept 24 hours."
        ),
    ),
]


@dataclass(frozen=True)
class Answer:
    """An action's answer when its status depends on what it did (201 created, 200 unchanged)."""

    body: BaseModel
    status: int


class IdempotencyKeyReused(InvalidInput):
    code = "idempotency-key-reused"


def fingerprint(method: str, path: str, payload: BaseModel | None) -> str:
    body = payload.model_dump(mode="json") if payload is not None else None
    canonical = orjson.dumps([method, path, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


_CLAIM_KEY = text("""
INSERT INTO idempotency_keys (client_id, key, method, path, fingerprint)
VALUES (:client_id, :key, :method, :path, :fingerprint)
ON CONFLICT DO NOTHING
RETURNING 1
""")

_STORE = text("""
UPDATE idempotency_keys SET status_code = :status, response = CAST(:response AS jsonb)
WHERE client_id = :client_id AND key = :key
""")


def _answer(result: BaseModel | Answer, default_status: int) -> tuple[Any, int]:
    if isinstance(result, Answer):
        return result.body.model_dump(mode="json"), result.status
    return result.model_dump(mode="json"), default_status


Locate = Callable[[Any], str]
"""The URL of what a 201 created, from its JSON body (the ``Location`` header)."""


def _located(body: Any, status: int, locate: Locate | None) -> dict[str, str]:
    if locate is None or status not in (201, 202):
        return {}
    return {"Location": locate(body)}


def _replay(status: int, body: Any, locate: Locate | None) -> Response:
    headers = {REPLAYED_HEADER: "true"}
    if status >= 400:
        return ProblemResponse(body, status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers | _located(body, status, locate))


async def idempotent(
    session: AsyncSession,
    request: Request,
    client_id: int,
    key: str | None,
    payload: BaseModel | None,
    action: Callable[[], Awaitable[BaseModel | Answer]],
    *,
    status_code: int = 200,
    locate: Locate | None = None,
) -> Response:
    """Run ``action`` once per (``client_id``, key) and answer with its result as JSON.

    ``locate`` gives a created resource's URL from the answer's body: a 201 (or 202), first
    time or replayed, carries it as ``Location``.

    Without a key the action simply runs. Domain errors become problem responses here (and are
    stored), so the caller's transaction commits the key with the refusal; the action's own
    writes are rolled back to a savepoint first.
    """
    if key is None:
        body, status = _answer(await action(), status_code)
        return JSONResponse(body, status_code=status, headers=_located(body, status, locate))
    method, path = request.method, request.url.path
    params = {
        "client_id": client_id,
        "key": key,
        "method": method,
        "path": path,
        "fingerprint": fingerprint(method, path, payload),
    }
    claimed = (await session.execute(_CLAIM_KEY, params)).first()
    if claimed is None:
        stored = await session.get(IdempotencyRecord, (client_id, key), populate_existing=True)
        if stored is None or stored.status_code is None:  # pragma: no cover - the insert waited for it
            raise IdempotencyKeyReused("the Idempotency-Key is in use by a request that has not finished")
        if stored.fingerprint != params["fingerprint"]:
            raise IdempotencyKeyReused(
                f"the Idempotency-Key was first used for {stored.method} {stored.path} with another "
                "body; use a new key for a new request",
                field="Idempotency-Key",
            )
        return _replay(stored.status_code, stored.response, locate)
    try:
        async with session.begin_nested():
            result = await action()
    except DomainError as exc:
        status, body = exc.status, domain_problem(exc, request)
        await session.execute(_STORE, {**params, "status": status, "response": orjson.dumps(body).decode()})
        return ProblemResponse(body, status_code=status)
    answer, status = _answer(result, status_code)
    await session.execute(_STORE, {**params, "status": status, "response": orjson.dumps(answer).decode()})
    return JSONResponse(answer, status_code=status, headers=_located(answer, status, locate))


async def prune(session: AsyncSession, *, older_than_hours: int) -> int:
    """Delete keys older than the retention; returns how many."""
    result = await session.execute(
        text("DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(hours => :h)"),
        {"h": older_than_hours},
    )
    return int(getattr(result, "rowcount", 0) or 0)
