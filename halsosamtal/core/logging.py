"""Logging set-up: plain lines on stderr, and a filter that keeps personal numbers out."""

from __future__ import annotations

import logging
import re

from halsosamtal.core.context import current_request_id
from halsosamtal.core.settings import Settings

# 10 or 12 digits with an optional separator before the last four: a personnummer's shape
# (not after a letter, so HSA-ids like SE2321000131-E... stay readable).
_PNR = re.compile(r"(?<![0-9A-Za-z])(\d{6}|\d{8})[-+]?\d{4}(?!\d)")


def redact(text: str) -> str:
    return _PNR.sub(lambda m: m.group(1) + "-****", text)


class RedactPersonalNumbers(logging.Filter):
    """Replace anything shaped like a personnummer in a log line by its date part and ****."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class RedactingFormatter(logging.Formatter):
    """Formats a record, then redacts the whole text: the traceback of an exception too, which
    may carry a query's parameters (a database error names the values it failed on). A line
    written while a request is handled carries its request id."""

    def format(self, record: logging.LogRecord) -> str:
        rid = getattr(record, "request_id", None) or current_request_id()
        record.request = f" [{rid}]" if rid else ""
        return redact(super().format(record))


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"

# Servers and libraries that bring handlers of their own: their lines go through ours instead,
# so that every line of every process is masked and shaped alike.
FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs")


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    for name in FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    # uvicorn's access log stays off (`halsosamtal api` passes --no-access-log).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    if any(isinstance(f, RedactPersonalNumbers) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter(LINE_FORMAT))
    handler.addFilter(RedactPersonalNumbers())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
