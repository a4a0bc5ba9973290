"""What the current request or job is, for log lines and problem bodies: its request id."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


def new_request_id(offered: str | None = None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (1-128 of ``A-Za-z0-9._:-``: it is
    written to logs, so nothing else is taken over), else a new random one."""
    if offered and _ACCEPTABLE.match(offered):
        return offered
    return uuid.uuid4().hex


def current_request_id() -> str | None:
    return request_id.get()
