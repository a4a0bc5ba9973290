"""HTTP edge shared by every router: problem+json errors, the per-request transaction, paging."""

from __future__ import annotations

import base64
import binascii
import functools
import logging
import re
import time
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin

import orjson
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halsosamtal.core.clock import STOCKHOLM
from halsosamtal.core.context import (
    REQUEST_ID_HEADER,
    RequestInfo,
    current_request,
    current_request_id,
    new_request_id,
    request_id,
)
from halsosamtal.core.database import database_unavailable
from halsosamtal.core.errors import PROBLEM_TYPE_PREFIX, DomainError, InvalidInput
from halsosamtal.core.logging import redact
from halsosamtal.core.metrics import observe_request, route_template

log = logging.getLogger("halsosamtal.api")
access_log = logging.getLogger("halsosamtal.access")

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


def _json_kind(annotation: Any) -> str | None:
    """ "int" or "bool" for a field that must be exactly that JSON type (also optional, or a list
    of it: "int[]"); None for any other field, which keeps pydantic's own rules."""
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _json_kind(args[0])
    if origin in (Union, UnionType):
        present = [a for a in args if a is not type(None)]
        return _json_kind(present[0]) if len(present) == 1 else None
    if origin is list and len(args) == 1 and (item := _json_kind(args[0])) in ("int", "bool"):
        return item + "[]"
    return None


def _json_type_problem(kind: str, value: Any) -> str | None:
    if kind == "bool":
        return None if isinstance(value, bool) else "must be true or false (a JSON boolean)"
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    what = {bool: "a boolean", str: "a string", float: "a decimal number"}.get(type(value))
    return "must be a JSON integer" + (f", not {what}" if what else "")


class StrictModel(BaseModel):
    """Base of every request body: unknown fields are an error, never silently dropped, and an
    integer or boolean field takes only that JSON type.

    Pydantic's lax mode would read ``true`` as 1, ``"12"`` as 12, ``12.0`` as 12 and ``"yes"`` as
    true: a client that sends the wrong type has a bug, and guessing what it meant could act on
    the wrong invitation. Strings for dates, times and amounts (``"1000.00"``) stay accepted:
    JSON has no other way to write them. (Not ``strict=True``: FastAPI validates the parsed body
    as Python objects, where strict mode refuses a date written as a string.)"""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _exact_json_types(cls, value: Any, info: ValidationInfo) -> Any:
        kind = _field_kinds(cls).get(info.field_name or "")
        if kind is None or value is None:
            return value
        if kind.endswith("[]"):
            if isinstance(value, list):
                for index, item in enumerate(value):
                    if (why := _json_type_problem(kind[:-2], item)) is not None:
                        raise PydanticCustomError(
                            "json_type", "item {index} {why}", {"index": index, "why": why}
                        )
            return value
        if (why := _json_type_problem(kind, value)) is not None:
            raise PydanticCustomError("json_type", "{why}", {"why": why})
        return value


@functools.cache
def _field_kinds(model: type[BaseModel]) -> dict[str, str]:
    return {
        name: kind for name, field in model.model_fields.items() if (kind := _json_kind(field.annotation))
    }


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
    """A problem body. Its texts never carry a personnummer, whatever a client sent: one put in
    a URL (``instance``) or in a field a message quotes is shown as its date part and ****, as
    in the logs. (Not the request id, which a client may have chosen and must get back as is.)"""

    media_type = PROBLEM_MEDIA_TYPE

    def render(self, content: Any) -> bytes:
        if isinstance(content, dict):
            content = {k: _free_text(k, v) for k, v in content.items() if k != "instance" or v}
            if isinstance(content.get("errors"), list):
                content["errors"] = [
                    {**e, "message": redact(str(e.get("message", "")))} if isinstance(e, dict) else e
                    for e in content["errors"]
                ]
        return orjson.dumps(content)


_FREE_TEXT = frozenset({"title", "detail", "instance"})


def problem_instance(scope: Scope) -> str | None:
    """``instance`` of a problem: the path with each path parameter written as its name
    (``/v1/care-units/{hsa_id}``), never a value a client put in the URL (an address, a
    personnummer); the request id names the occurrence. None when no operation matched."""
    if scope.get("route") is None:
        return None
    names = {str(v): k for k, v in (scope.get("path_params") or {}).items()}
    path = str(scope.get("path", ""))
    return "/".join("{" + names[part] + "}" if part in names else part for part in path.split("/"))


def _free_text(key: str, value: Any) -> Any:
    return redact(value) if key in _FREE_TEXT and isinstance(value, str) else value


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the statuses it can answer with a problem."""
    descriptions = {
        400: "The body is not JSON (a syntax error, or bytes that are not UTF-8)",
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


def validation_problem(exc: RequestValidationError, instance: str | None) -> dict[str, Any]:
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
    # One parameter read by two dependencies (a unit's hsa_id) is reported once.
    errors = list({(e["location"], e["pointer"], e["message"]): e for e in errors}.values())
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


def malformed_body_problem(instance: str | None, detail: str) -> dict[str, Any]:
    """A 400: the body is not JSON at all (a syntax error, bytes that are not UTF-8), so no field
    of it can be named. A body that parses but breaks the schema or a rule is a 422."""
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_PREFIX + "malformed-body",
        "title": "Malformed body",
        "status": 400,
        "detail": detail,
        "code": "malformed-body",
        "instance": instance,
        "errors": [{"location": "body", "pointer": "", "message": detail, "type": "json_invalid"}],
    }
    if (rid := current_request_id()) is not None:
        body["request_id"] = rid
    return body


def domain_problem(exc: DomainError, request: Request) -> dict[str, Any]:
    """A domain error's problem body. A 422 gets ``errors`` like a schema validation error does
    (location, JSON pointer, message, type), so every 422 has one shape: the field it names, or
    the whole body (pointer "") when the problem is the body itself (a register file's header)."""
    body = exc.problem(problem_instance(request.scope))
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
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                where = err.get("ctx", {}).get("error", "invalid JSON")
                at = list(err.get("loc", ()))[1:]
                detail = f"the body is not JSON: {where}" + (f" at character {at[0]}" if at else "")
                problem = malformed_body_problem(problem_instance(request.scope), detail)
                return ProblemResponse(problem, status_code=400)
        return ProblemResponse(validation_problem(exc, problem_instance(request.scope)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        if exc.status_code == 400:
            # FastAPI's answer to a body it could not read as JSON at all (not UTF-8, nested
            # too deep): the same problem as a JSON syntax error.
            detail = f"the body could not be read as JSON ({exc.detail})"
            problem = malformed_body_problem(problem_instance(request.scope), detail)
            return ProblemResponse(problem, status_code=400)
        code = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code, "http-error")
        body = {
            "type": PROBLEM_TYPE_PREFIX + code,
            "title": str(exc.detail) if exc.status_code != 404 else "Not found",
            "status": exc.status_code,
            "detail": f"{request.method} {problem_instance(request.scope) or 'this path'}: {exc.detail}",
            "code": code,
            "instance": problem_instance(request.scope),
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
    """Pure ASGI middleware around every request: its id, its access-log line and metrics, and
    its last line of defence.

    - The request id is the caller's ``X-Request-ID`` (when sane) or a new one; it is sent back
      in the same header, is in every problem body and in every log line of the request.
    - When the request is over, one INFO line on ``halsosamtal.access`` says method, path,
      status, duration, route template and client, and the request is counted and timed by
      route template and status class (``halsosamtal.core.metrics``).
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
        # Authentication keeps the client it found in request.state, i.e. this dict.
        info = RequestInfo(rid, scope.setdefault("state", {}))
        info_token = current_request.set(info)
        started = False
        status = 500
        began = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
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
            body, status, headers = unexpected_problem(exc, problem_instance(scope) or "")
            if status == 500:
                log.error(
                    "unhandled %s on %s %s", type(exc).__name__, scope.get("method"), path, exc_info=exc
                )
            else:
                log.warning("%s on %s %s: %s", body["code"], scope.get("method"), path, type(exc).__name__)
            response = ProblemResponse(body, status_code=status, headers=headers)
            await response(scope, receive, send_with_id)
        finally:
            _finished(scope, info, status, time.perf_counter() - began)
            current_request.reset(info_token)
            request_id.reset(token)


def _finished(scope: Scope, info: RequestInfo, status: int, seconds: float) -> None:
    """The request's access-log line and its metrics."""
    method, route = str(scope.get("method", "")), route_template(scope)
    observe_request(method, route, status, seconds)
    duration_ms = round(seconds * 1000, 1)
    client = info.client
    access_log.info(
        "%s %s %s %.1f ms%s",
        method,
        scope.get("path", ""),
        status,
        duration_ms,
        f" client={client}" if client else "",
        extra={
            "request_id": info.request_id,
            "client": client,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


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


_UNUSABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
"""In a JSON text, the escapes that decode to a NUL or to half of a surrogate pair: the only way
a parsed JSON string can hold text Postgres cannot store (a raw control byte is invalid JSON)."""


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can.

    Postgres refuses a NUL in text, and a lone surrogate (``"\\ud800"`` in JSON) is no Unicode
    at all: neither can be kept, so neither is accepted anywhere, in any field."""
    if "\x00" in value:
        return "must not contain a NUL character (\\u0000)"
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        return "must be Unicode text (it contains half of a surrogate pair)"
    return None


def _unusable_text(node: Any, loc: tuple[int | str, ...], found: list[dict[str, Any]]) -> None:
    if isinstance(node, str):
        if (why := text_problem(node)) is not None:
            found.append({"loc": loc, "msg": why, "type": "string_unusable_text"})
    elif isinstance(node, dict):
        for key, value in node.items():
            if (why := text_problem(key)) is not None:
                # The name itself is broken: point at its parent, naming no unusable pointer.
                found.append({"loc": loc, "msg": f"a field name {why}", "type": "string_unusable_text"})
                continue
            _unusable_text(value, (*loc, key), found)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _unusable_text(value, (*loc, index), found)


def _json_content(request: Request) -> bool:
    kind = request.headers.get("content-type", "application/json").split(";", 1)[0].strip().lower()
    return kind == "application/json" or (kind.startswith("application/") and kind.endswith("+json"))


async def refuse_unusable_text(request: Request) -> None:
    """Refuse text no field can hold (a NUL, a lone surrogate) in the path, the query or a JSON
    body, with a 422 naming each field, before any handler or the database sees it.

    One check for every operation, so a field added later is covered without being declared
    specially; without it, such a value reached Postgres and the request answered 500.
    CSV bodies are read by their importers as streams and checked there, line by line."""
    found: list[dict[str, Any]] = []
    for name, value in request.path_params.items():
        if isinstance(value, str) and (why := text_problem(value)) is not None:
            found.append({"loc": ("path", name), "msg": why, "type": "string_unusable_text"})
    for name, value in request.query_params.multi_items():
        why = text_problem(name) or text_problem(value)
        if why is not None:
            found.append(
                {"loc": ("query", name.replace("\x00", "")), "msg": why, "type": "string_unusable_text"}
            )
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is not None and _has_body(dependant) and _json_content(request):
        # FastAPI read and parsed the body before resolving dependencies; both are cached on the
        # request, so this costs a scan of the bytes and, only when an escape is there, a walk.
        raw = await request.body()
        if raw and _UNUSABLE_ESCAPE.search(raw):
            _unusable_text(await request.json(), ("body",), found)
    if found:
        raise RequestValidationError(found)


def _has_body(dependant: Any) -> bool:
    return bool(dependant.body_params) or any(_has_body(sub) for sub in dependant.dependencies)


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


MAX_CURSOR_LENGTH = 200
"""Far longer than any cursor this API gives out; a longer one is refused before decoding."""

K = TypeVar("K")

_NOT_OURS = "cursor is not one this API gave out"

CursorId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]
"""A row id in a cursor: a JSON integer in the id range, never a float, a boolean or a string."""


class CursorCodec(Generic[K]):
    """One kind of keyset position, written into an opaque cursor and read back, typed.

    A cursor is base64url (unpadded) of a JSON array validated strictly against ``key``: a
    forged one (``["x"]``, ``[1e20]``, ``[true]``, a huge integer, the wrong number of values,
    bytes that are not base64 or not JSON) is a 422 on ``cursor``, never a value that reaches
    the database. Every paged list reads its cursor through one of these."""

    def __init__(self, key: Any) -> None:
        self._adapter: TypeAdapter[K] = TypeAdapter(key)

    def encode(self, key: K) -> str:
        return base64.urlsafe_b64encode(self._adapter.dump_json(key)).decode("ascii").rstrip("=")

    def decode(self, cursor: str | None, field: str = "cursor") -> K | None:
        """The position a cursor carries; None for the first page (no cursor)."""
        if cursor is None:
            return None
        try:
            return self._parse(cursor)
        except ValueError as exc:
            raise InvalidInput(_NOT_OURS, field=field) from exc

    def check(self, cursor: str | None) -> str | None:
        """A pydantic validator: the cursor as sent when it is one of this kind, else a
        ValueError, so a forged cursor is a 422 before the handler looks anything up."""
        if cursor is not None:
            self._parse(cursor)
        return cursor

    def _parse(self, cursor: str) -> K:
        if not 0 < len(cursor) <= MAX_CURSOR_LENGTH:
            raise ValueError(_NOT_OURS)
        try:
            raw = base64.b64decode(cursor.encode("ascii") + b"=" * (-len(cursor) % 4), b"-_", validate=True)
            return self._adapter.validate_json(raw, strict=True)
        except (UnicodeEncodeError, binascii.Error, ValidationError) as exc:
            raise ValueError(_NOT_OURS) from exc


ID_CURSOR: CursorCodec[tuple[int]] = CursorCodec(tuple[CursorId])
"""Position in a list ordered by id (either way): the last id shown."""

TIME_CURSOR: CursorCodec[tuple[datetime, int]] = CursorCodec(tuple[ServiceTime, CursorId])
"""Position in a list ordered by a time, then id: the last row's time and id."""

_CURSOR_DESCRIPTION = "`next_cursor` of the previous page"

IdCursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description=_CURSOR_DESCRIPTION),
    AfterValidator(ID_CURSOR.check),
]
"""The ``cursor`` query parameter of a list paged by id."""

TimeCursorQuery = Annotated[
    str | None,
    Query(max_length=MAX_CURSOR_LENGTH, description=_CURSOR_DESCRIPTION),
    AfterValidator(TIME_CURSOR.check),
]
"""The ``cursor`` query parameter of a list paged by time, then id."""

IdCursorField = Annotated[
    str | None,
    Field(max_length=MAX_CURSOR_LENGTH, description=_CURSOR_DESCRIPTION),
    AfterValidator(ID_CURSOR.check),
]
"""A ``cursor`` in a request body (searches sent as POST), paged by id."""

TimeCursorField = Annotated[
    str | None,
    Field(max_length=MAX_CURSOR_LENGTH, description=_CURSOR_DESCRIPTION),
    AfterValidator(TIME_CURSOR.check),
]
"""A ``cursor`` in a request body, paged by time, then id."""


def decode_id_cursor(cursor: str | None) -> int | None:
    """The id after (or before) which a page ordered by id continues; None for the first page."""
    key = ID_CURSOR.decode(cursor)
    return None if key is None else key[0]


def encode_id_cursor(last_id: int) -> str:
    return ID_CURSOR.encode((last_id,))


def decode_time_cursor(cursor: str | None) -> tuple[datetime | None, int]:
    """The (time, id) after which a page ordered by time then id continues; (None, 0) for the
    first page. A cursor this API did not give out is a 422 on ``cursor``."""
    key = TIME_CURSOR.decode(cursor)
    return (None, 0) if key is None else key


def time_page(rows: Sequence[Any], limit: int) -> tuple[Sequence[Any], str | None]:
    """Split ``limit + 1`` rows ordered by (``starts_at``, ``id``) into the page and the cursor
    of the next one (None on the last page)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], TIME_CURSOR.encode((last.starts_at, last.id))


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    """A page of items; pass ``next_cursor`` back as ``cursor`` for the next page."""

    items: list[T]
    next_cursor: str | None = Field(None, description="Absent on the last page")
