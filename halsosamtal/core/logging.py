"""Logging set-up: plain lines on stderr, and a filter that keeps personal numbers out."""

from __future__ import annotations

import logging
import re

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
    may carry a query's parameters (a database error names the values it failed on)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(settings: Settings) -> None:
    root = logging.getLogger()
    if any(isinstance(f, RedactPersonalNumbers) for h in root.handlers for f in h.filters):
        return
    handler = logging.StreamHandler()
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactPersonalNumbers())
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
