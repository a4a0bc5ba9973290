"""HTTP edge shared by every router: problem+json errors, the per-request transaction, paging."""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, Generic, TypeVar

import orjson
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.core.context import REQUEST_ID_HEADER, current_request_id, new_request_id, request_id
from halsosamtal.core.database import database_unavailable
from halsosamtal.core.errors import PROBLEM_TYPE_PREFIX, DomainError, InvalidInput

log = logging.getLogger("halsosamtal.api")

PROBLEM_MEDIA_TYPE = "application/problem+json"
MAX_ID = 2**63 - 1
"""The largest id (bigint): a larger one in a request is a 422, never a database error."""
EARLIEST_DAY, LATEST_DAY = date(2000, 1, 1), date(2100, 12, 31)


def _within_service_years(value: date) -> date:
    day = value.date() if isinstance(value, datetime) else value
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValueError(f"must be between {EARLIEST_DAY.isoformat()} and {LATEST_DAY.isoformat()}")
    return value


ServiceDay = Annotated[date, AfterValidator(_within_service_years)]
"""A calendar day the service can hold (2000-2100): the far ends of the calendar are refused
with a 422 instead of overflowing in date arithmetic."""
ServiceTime = Annotated[AwareDatetime, AfterValidator(_within_service_years)]
"""An aware timestamp within the service's years."""

RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def _swedish(value: datetime) -> datetime:
    return value.astimezone(STOCKHOLM) if value.tzinfo is not None else value


LocalTime = Annotated[datetime, PlainSerializer(_swedish, return_type=datetime, when_used="json")]
"""A timestamp in a response: written in Swedish local time with its offset
(``2027-03-02T08:00:00+01:00``), the time residents and centres read. Every response timestamp
uses it, so one object never mixes conventions (a booking's time local, its booked_at UTC)."""


Money = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""An amount of money in a response: a JSON number (like every measurement), in the currency the
object names (``currency: "SEK"``); exact to the öre in the database and in computations."""

Decimalish = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]
"""A non-money decimal in a response (a share, an expected count): a JSON number."""


class StrictModel(BaseModel):
    """Base of every request body: unknown fields are an error, never silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class FieldProblem(BaseModel):
    location: str = Field(description="body, query, path or header")
    pointer: str = Field(description="JSON pointer to the field within its location, e.g. /ages/2")
    message: str
    type: str = Field(description="Machine-readable kind of problem, e.g. missing, extra_forbidden")


class Problem(BaseModel):
    """RFC 9457 problem details. ``code`` is the stable machine-readable kind."""

    type: str = Field(examples=[PROBLEM_TYPE_PREFIX + "not-found"])
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None
    request_id: str | None = Field(
        None,
        description="The request's id (also in the X-Request-ID header); quote it when reporting a problem",
    )


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the statuses it can answer with a problem."""
    descriptions = {
        400: "Bad request",
        401: "Missing, unknown or revoked API key",
        403: "The client's role or care units do not allow this",
        404: "Not found",
        409: "Conflict with the current state",
        422: "The request is malformed or breaks a rule; `errors` names each field",
    }
    return {
        s: {
            "model": Problem,
            "description": descriptions.get(s, "Error"),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for s in statuses
    }


def _json_pointer(loc: Sequence[int | str]) -> str:
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in loc]
    return "/" + "/".join(parts) if parts else ""


def validation_problem(exc: RequestValidationError, instance: str) -> dict[str, Any]:
    errors = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        where = str(loc.pop(0)) if loc else "body"
        errors.append(
            {
                "location": where,
                "pointer": _json_pointer(loc),
                "message": str(err.get("msg", "invalid")),
                "type": str(err.get("type", "invalid")),
            }
        )
    summary = "; ".join(f"{e['location']}{e['pointer']}: {e['message']}" for e in errors[:5])
    body = {
        "type": PROBLEM_TYPE_PREFIX + "validation",
        "title": "Invalid request",
        "status": 422,
        "detail": summary or "the request is not valid",
        "code": "validation",
        "instance": instance,
        "errors": errors,
    }
    if (rid := current_request_id()) is not None:
        body["request_id"] = rid
    return body


def domain_problem(exc: DomainError, request: Request) -> dict[str, Any]:
    """A domain error's problem body. A 422 gets ``errors`` like a schema validation error does
    (location, JSON pointer, message, type), so every 422 has one shape: the field it names, or
    the whole body (pointer "") when the problem is the body itself (a register file's header)."""
    body = exc.problem(request.url.path)
    field = exc.extra.get("field")
    if exc.status == 422 and "errors" not in body:
        if not isinstance(field, str):
            body["errors"] = [{"location": "body", "pointer": "", "message": exc.detail, "type": exc.code}]
            return body
        if field in request.query_params:
            location = "query"
        elif field in request.headers:
            location = "header"
        elif field in request.path_params:
            location = "path"
        else:
            location = "body"
        pointer = "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in field.split("."))
        body["errors"] = [{"location": location, "pointer": pointer, "message": exc.detail, "type": exc.code}]
    return body


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> ProblemResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return ProblemResponse(domain_problem(exc, request), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> ProblemResponse:
        return ProblemResponse(validation_problem(exc, request.url.path), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        body = {
            "type": PROBLEM_TYPE_PREFIX + code,
            "title": str(exc.detail) if exc.status_code != 404 else "Not found",
            "status": exc.status_code,
            "detail": f"{request.method} {request.url.path}: {exc.detail}",
            "code": code,
            "instance": request.url.path,
        }
        if (rid := current_request_id()) is not None:
            body["request_id"] = rid
        return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)

    # Anything else is answered by RequestContext below (not by an ``Exception`` handler, which
    # Starlette runs in its outermost middleware and then re-raises: the server would log the
    # traceback a second time and drop the kept-alive connection).
    app.add_middleware(RequestContext)


def unexpected_problem(exc: BaseException, instance: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The problem body, status and headers for an exception no handler expected.

    Trouble with the database's connection is a 503 with ``Retry-After`` (the request did not
    happen and can be sent again); anything else is a 500 that names only the request id."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": "the service failed to handle the request; it has been logged under its request id",
        "code": "internal",
        "instance": instance,
    }
    if (rid := current_request_id()) is not None:
        body["request_id"] = rid
    retry = {"Retry-After": "1"}
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if database_unavailable(exc):
        body.update(
            status=503,
            code="database-unavailable",
            title="Database unavailable",
            type=PROBLEM_TYPE_PREFIX + "database-unavailable",
            detail="the connection to the database was lost; send the request again (writes with the "
            "same Idempotency-Key are safe to repeat)",
        )
        return body, 503, retry
    if getattr(orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        # Two requests for the same rows collided in a way Postgres resolves by aborting one
        # (rare: every path takes its locks in one order). Nothing of this one was kept.
        body.update(
            status=503,
            code="retry",
            title="Try again",
            type=PROBLEM_TYPE_PREFIX + "retry",
            detail="the request collided with another one for the same records and was not "
            "carried out; send it again",
        )
        return body, 503, retry
    if getattr(orig, "sqlstate", None) == "57014":  # query_canceled: the statement timeout
        body.update(
            status=503,
            code="timeout",
            title="Timed out",
            type=PROBLEM_TYPE_PREFIX + "timeout",
            detail="the database did not answer in time; try again",
        )
        return body, 503, retry
    return body, 500, {}


IDEMPOTENT_READS = frozenset({"GET", "HEAD"})


def _empty_body(receive: Receive) -> Receive:
    """``receive`` for a second run of a request without a body: its (empty) body again, then
    whatever the client does next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await receive()

    return again


class RequestContext:
    """Pure ASGI middleware around every request: its id and its last line of defence.

    - The request id is the caller's ``X-Request-ID`` (when sane) or a new one; it is sent back
      in the same header, is in every problem body and in every log line of the request.
    - An exception that reaches here is logged once, with its traceback, and answered with a
      problem (503 for database trouble, else 500), so the connection stays open for the
      client's next request. When the response has started already, nothing can be answered
      and the server closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        offered = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                offered = value.decode("latin-1")
                break
        rid = new_request_id(offered)
        token = request_id.set(rid)
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = rid
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # A read that met a connection the database had dropped (a restart) is tried once
                # more: the pool has discarded every connection from before, and nothing of the
                # first try was kept. Writes are answered 503 and the client sends them again.
                if started or scope.get("method") not in IDEMPOTENT_READS or not database_unavailable(exc):
                    raise
                log.info(
                    "%s %s met a dropped database connection; tried once more",
                    scope["method"],
                    scope.get("path"),
                )
                await self.app(scope, _empty_body(receive), send_with_id)
        except Exception as exc:
            if started:
                raise
            path = scope.get("path", "")
            body, status, headers = unexpected_problem(exc, path)
            if status == 500:
                log.error(
                    "unhandled %s on %s %s", type(exc).__name__, scope.get("method"), path, exc_info=exc
                )
            else:
                log.warning("%s on %s %s: %s", body["code"], scope.get("method"), path, type(exc).__name__)
            response = ProblemResponse(body, status_code=status, headers=headers)
            await response(scope, receive, send_with_id)
        finally:
            request_id.reset(token)


_ALLOWED_QUERY = "_halsosamtal_query_names"
"""Where a route keeps the query parameter names it accepts, worked out on its first request."""


def _query_names(dependant: Any) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def refuse_unknown_query(request: Request) -> None:
    """Refuse query parameters the operation does not have (422, as unknown body fields are): a
    filter with a misspelt or foreign name must not silently return everything."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed: frozenset[str] | None = getattr(route, _ALLOWED_QUERY, None)
    if allowed is None:
        allowed = frozenset(_query_names(dependant))
        setattr(route, _ALLOWED_QUERY, allowed)
    unknown = [name for name in dict.fromkeys(request.query_params.keys()) if name not in allowed]
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": f"this operation has no query parameter {name!r} (it has: {known})",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


async def session_dependency(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed when the handler returns, rolled back on error.

    The commit finishes before any byte of the response leaves (``scope="function"``: FastAPI
    closes the dependency when the handler returns, not after the response is sent). A client
    that acts on a 2xx therefore finds its write, and a commit that fails is answered as an
    error (503 when the database went away), never as the 2xx of a write that did not happen."""
    sessionmaker = request.app.state.sessionmaker
    async with sessionmaker() as session, session.begin():
        yield session


Session = Annotated[AsyncSession, Depends(session_dependency, scope="function")]


# --- Keyset pagination -------------------------------------------------------------------------


def encode_cursor(*values: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(values)).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    """Decode an opaque cursor made by :func:`encode_cursor`; a bad one is a 422 on ``cursor``."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidInput("cursor is not one this API gave out", field="cursor") from exc
    if not isinstance(values, list) or len(values) != arity:
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return values


def decode_time_cursor(cursor: str | None) -> tuple[datetime | None, int]:
    """The (time, id) after which a page ordered by time then id continues; (None, 0) for the
    first page. A cursor this API did not give out is a 422 on ``cursor``."""
    if cursor is None:
        return None, 0
    raw, after_id = decode_cursor(cursor, 2)
    try:
        after = datetime.fromisoformat(raw)
    except (TypeError, ValueError) as exc:
        raise InvalidInput("cursor is not one this API gave out", field="cursor") from exc
    if after.tzinfo is None or not isinstance(after_id, int):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return after, after_id


def time_page(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], str | None]:
    """Split ``limit + 1`` rows ordered by (``starts_at``, ``id``) into the page and the cursor
    of the next one (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor(last.starts_at.isoformat(), last.id)


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of items; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Absent on the last page")
