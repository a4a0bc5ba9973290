"""The API's doors: before any route runs, and before any byte of a body is read.

A pure ASGI middleware, in this order, for every request under ``/v1``:

1. The API key (``Authorization: Bearer``) is authenticated: a missing, unknown or revoked one
   is 401 and counts as a failure of its source address; past ``rate_limit_failed_auth`` such
   requests get 429 instead (a valid key from that address still passes). Authentication
   therefore comes before the body is parsed: a malformed body without a key is 401, never 422.
2. The client's own rate (``rate_limit_<role>``) is counted: over it, 429.
3. The body's size: a ``Content-Length`` over the limit is 413 before anything is read; a body
   without one (chunked) is counted as it streams and cut off at the limit with 413. The CSV
   imports have a larger limit of their own (``max_import_bytes``) and stream.

Counters live in Redis (the ``limits`` library, fixed windows). When Redis does not answer, the
limits fail open: requests go on (Redis is not where bookings live), it is logged, and
``/readyz`` says so; Redis is tried again every few seconds.

Answers carry the rate of the IETF draft "RateLimit header fields for HTTP"
(draft-ietf-httpapi-ratelimit-headers), in its widely implemented separate-field form:
``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds until the window
ends) and ``RateLimit-Policy`` (``<limit>;w=<window seconds>``); a 429 adds ``Retry-After``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halsosamtal.access.schemas import Principal
from halsosamtal.access.service import authenticate
from halsosamtal.core.errors import DomainError, Unauthenticated
from halsosamtal.core.http import ProblemResponse
from halsosamtal.core.settings import Settings

log = logging.getLogger("halsosamtal.access.doors")

IMPORT_ROUTES = frozenset(
    {("POST", "/v1/residents/import"), ("POST", "/v1/care-units/import"), ("POST", "/v1/reports/cni")}
)
"""The CSV imports: streamed, with their own, larger body limit."""
RETRY_REDIS_AFTER_S = 5.0
REDIS_TIMEOUT_S = 0.5

LimitsState = Literal["enforced", "fail-open", "off"]


class RateLimited(DomainError):
    code: ClassVar[str] = "rate-limited"
    status: ClassVar[int] = 429
    title: ClassVar[str] = "Too many requests"


class TooManyFailedAuthentications(RateLimited):
    code = "too-many-failed-authentications"


class BodyTooLarge(DomainError):
    code = "body-too-large"
    status = 413
    title = "Request body too large"


class _Overflow(Exception):
    """The body streamed past its limit (raised from ``receive``; answered with 413)."""


@dataclass(frozen=True)
class Window:
    """One counter after a hit: the rate, what is left of it, and when the window ends."""

    item: RateLimitItem
    count: int
    reset_s: int

    @property
    def exceeded(self) -> bool:
        return self.count > self.item.amount

    def headers(self) -> dict[str, str]:
        return {
            "RateLimit-Limit": str(self.item.amount),
            "RateLimit-Remaining": str(max(0, self.item.amount - self.count)),
            "RateLimit-Reset": str(self.reset_s),
            "RateLimit-Policy": f"{self.item.amount};w={self.item.get_expiry()}",
        }


class Limiter:
    """Counters in Redis, failing open while Redis does not answer."""

    def __init__(self, settings: Settings, redis_url: str, *, prefix: str | None = None) -> None:
        self.enabled = settings.rate_limits
        self.roles: dict[str, RateLimitItem] = {
            "operator": parse(settings.rate_limit_operator),
            "portal": parse(settings.rate_limit_portal),
            "ehr": parse(settings.rate_limit_ehr),
        }
        self.failed_auth = parse(settings.rate_limit_failed_auth)
        uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
        self.storage = RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=prefix or f"halsosamtal:{settings.database}:limits",
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_TIMEOUT_S,
        )
        self._down_until = 0.0
        self._down = False
        self._ends: dict[str, float] = {}

    @property
    def state(self) -> LimitsState:
        if not self.enabled:
            return "off"
        return "fail-open" if self._down else "enforced"

    def _available(self) -> bool:
        return self.enabled and time.monotonic() >= self._down_until

    def _failed(self, exc: BaseException) -> None:
        if not self._down:
            log.warning(
                "rate limits fail open: Redis does not answer (%s: %s); requests go on unlimited, "
                "trying again every %.0f s",
                type(exc).__name__,
                exc,
                RETRY_REDIS_AFTER_S,
            )
        self._down = True
        self._down_until = time.monotonic() + RETRY_REDIS_AFTER_S

    def _recovered(self) -> None:
        if self._down:
            log.warning("rate limits are enforced again: Redis answers")
        self._down = False

    async def hit(self, item: RateLimitItem, *ids: str) -> Window | None:
        """Count one request; None when limits are off or Redis is down (fail open)."""
        if not self._available():
            return None
        key = item.key_for(*ids)
        try:
            count = int(await self.storage.incr(key, item.get_expiry()))
            # One round trip in the steady state: a window's end is known from its first hit
            # (this process's, or asked of Redis once).
            ends = time.time() + item.get_expiry() if count == 1 else self._ends.get(key)
            if ends is None or ends <= time.time():
                ends = await self.storage.get_expiry(key)
        except Exception as exc:  # any failure of the counter store: fail open, never a 500
            self._failed(exc)
            return None
        if len(self._ends) > 50_000:
            self._ends.clear()
        self._ends[key] = ends
        self._recovered()
        return Window(item, count, max(1, math.ceil(ends - time.time())))


def limiter_of(app: Any) -> Limiter | None:
    """The app's limiter (made on first use from its settings and Redis), or None before the
    app has started."""
    state = app.state
    found = getattr(state, "limiter", None)
    if found is None and getattr(state, "settings", None) is not None:
        settings: Settings = state.settings
        url = settings.redis_url
        if not url:
            kwargs = state.resources.redis.connection_pool.connection_kwargs
            url = (
                f"redis://{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"
            )
        found = state.limiter = Limiter(settings, url)
    return found if isinstance(found, Limiter) else None


def rate_limits_state(app: Any, redis_answers: bool) -> LimitsState:
    """What ``/readyz`` says of the limits: off, enforced, or failing open (Redis does not answer
    the probe, or the limiter's last try failed)."""
    settings: Settings = app.state.settings
    if not settings.rate_limits:
        return "off"
    limiter = getattr(app.state, "limiter", None)
    if not redis_answers or (isinstance(limiter, Limiter) and limiter.state == "fail-open"):
        return "fail-open"
    return "enforced"


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            text: str = bytes(value).decode("latin-1")
            scheme, _, credentials = text.partition(" ")
            return credentials.strip() or None if scheme.lower() == "bearer" else None
    return None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class Doors:
    """The middleware; see the module's description."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        asgi_app = scope.get("app")
        settings: Settings | None = getattr(getattr(asgi_app, "state", None), "settings", None)
        if settings is None:  # not started (no lifespan): nothing to check against
            await self.app(scope, receive, send)
            return
        path, method = scope.get("path", ""), scope.get("method", "GET")
        window: Window | None = None
        try:
            if path.startswith("/v1/"):
                window = await self._authenticate(scope, asgi_app)
            limit = settings.max_import_bytes if (method, path) in IMPORT_ROUTES else settings.max_body_bytes
            length = _content_length(scope)
            if length is not None and length > limit:
                raise BodyTooLarge(
                    f"the body is {length} bytes; this operation takes at most {limit}", limit=limit
                )
        except DomainError as refused:
            await self._refuse(scope, receive, send, refused)
            return
        await self._pass(scope, receive, send, limit, window)

    async def _authenticate(self, scope: Scope, app: Any) -> Window | None:
        limiter = limiter_of(app)
        key = _bearer(scope)
        principal: Principal | None = None
        if key is not None:
            async with app.state.sessionmaker() as session:
                principal = await authenticate(session, key)
        if principal is None:
            # A valid key always passes (a portal behind the same proxy as a prober is not shut
            # out); failures are counted per address, and past the limit answered with 429.
            address = (scope.get("client") or ("unknown", 0))[0]
            failures = await limiter.hit(limiter.failed_auth, "failed-auth", address) if limiter else None
            if failures is not None and failures.exceeded:
                raise TooManyFailedAuthentications(
                    f"too many requests without a valid API key from this address; try again in "
                    f"{failures.reset_s} s",
                    retry_after=failures.reset_s,
                    window=failures,
                )
            raise Unauthenticated(
                "send an API key as `Authorization: Bearer <key>`"
                if key is None
                else "the API key is unknown or revoked"
            )
        scope.setdefault("state", {})["principal"] = principal
        if limiter is None:
            return None
        window = await limiter.hit(limiter.roles[principal.role], "client", str(principal.client_id))
        if window is not None and window.exceeded:
            raise RateLimited(
                f"the client {principal.name!r} is over its rate of {window.item.amount} requests per "
                f"{window.item.get_expiry()} s; try again in {window.reset_s} s",
                retry_after=window.reset_s,
                window=window,
            )
        return window

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, refused: DomainError) -> None:
        body = refused.problem(scope.get("path", ""))
        headers: dict[str, str] = {}
        window = body.pop("window", None)
        if isinstance(window, Window):
            headers |= window.headers()
        if isinstance(refused, RateLimited):
            headers["Retry-After"] = str(refused.extra.get("retry_after", 1))
        if refused.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if refused.status == 413:
            headers["Connection"] = "close"  # the rest of the body is not read
        await ProblemResponse(body, status_code=refused.status, headers=headers)(scope, receive, send)

    async def _pass(
        self, scope: Scope, receive: Receive, send: Send, limit: int, window: Window | None
    ) -> None:
        received = 0
        overflowed = False
        started = False

        async def counted() -> Message:
            nonlocal received, overflowed
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    overflowed = True
                    raise _Overflow
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if overflowed:
                return  # whatever the app answers to a cut-off body, the answer is the 413
            if message["type"] == "http.response.start":
                started = True
                if window is not None:
                    headers = MutableHeaders(scope=message)
                    for name, value in window.headers().items():
                        headers[name] = value
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except _Overflow:
            pass
        except Exception:
            if not overflowed:
                raise
        if overflowed and not started:
            refused = BodyTooLarge(
                f"the body is over {limit} bytes, the most this operation takes", limit=limit
            )
            await self._refuse(scope, receive, send, refused)
