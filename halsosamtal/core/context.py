"""What the current request or job is, for log lines and problem bodies: its request id, and
for the access log its route and client."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


@dataclass
class RequestInfo:
    """The request being handled, as the log lines written during it see it."""

    request_id: str
    state: dict[str, Any] = field(default_factory=dict)
    """The request's ``scope["state"]`` (``request.state``): authentication leaves the
    client it found there as ``principal``, after this object was made."""

    @property
    def client(self) -> str | None:
        """The API client's name once the request is authenticated, else None."""
        return getattr(self.state.get("principal"), "name", None)


current_request: ContextVar[RequestInfo | None] = ContextVar("current_request", default=None)


def new_request_id(offered: str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (1-128 of ``A-Za-z0-9._:-``: it is
    written to logs, so nothing else is taken over), else a new random one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id.get()


def current_client() -> str | None:
    """The authenticated API client of the request being handled, if any."""
    info = current_request.get()
    return info.client if info is not None else None
