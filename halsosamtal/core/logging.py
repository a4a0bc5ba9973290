"""Logging set-up: plain lines (or JSON objects) on stderr, and a filter that keeps personal
numbers out of every line and every field."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

from halsosamtal.core.context import current_client, current_request_id
from halsosamtal.core.settings import Settings, get_settings

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


# Fields of a JSON line besides time, level, logger and message, taken from the record's
# ``extra`` when given (the access log gives them all), else from the request being handled.
JSON_FIELDS = ("request_id", "client", "route", "status", "duration_ms")


def _masked(value: Any) -> Any:
    """A field's value with anything shaped like a personnummer masked, whatever its type (a
    number of twelve digits is masked as a string)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        text = str(value)
        return value if redact(text) == text else redact(text)
    if isinstance(value, dict):
        return {redact(str(k)): _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return redact(str(value))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, and the request's
    id, client, route template, status and duration when there is one. Every field is masked;
    a traceback goes into ``exception`` (masked too), so the record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        found = {
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "client": getattr(record, "client", None) or current_client(),
        }
        for name in JSON_FIELDS:
            value = found.get(name, getattr(record, name, None))
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_masked(doc), ensure_ascii=False, default=str)


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s%(request)s: %(message)s"

# Servers and libraries that bring handlers of their own: their lines go through ours instead,
# so that every line of every process is masked and shaped alike.
FOREIGN_LOGGERS = ("uvicorn", "uvicorn.error", "arq", "arq.worker", "arq.jobs")


def formatter_for(settings: Settings) -> logging.Formatter:
    return JsonFormatter() if settings.log_format == "json" else RedactingFormatter(LINE_FORMAT)


def make_handler(settings: Settings | None = None) -> logging.Handler:
    """The service's handler: stderr, masked, in the configured format."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter_for(settings or get_settings()))
    handler.addFilter(RedactPersonalNumbers())
    return handler


def dict_config(settings: Settings) -> dict[str, Any]:
    """The same set-up as :func:`configure_logging`, for a program that configures logging
    from a dictionary before it runs any of ours (arq's ``--custom-log-dict``), so its first
    lines are shaped like the rest."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"halsosamtal": {"()": "halsosamtal.core.logging.make_handler"}},
        "root": {"handlers": ["halsosamtal"], "level": settings.log_level.upper()},
        "loggers": {
            **{name: {"handlers": [], "propagate": True} for name in FOREIGN_LOGGERS},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


def configure_logging(settings: Settings, *, level: str | None = None) -> None:
    root = logging.getLogger()
    for name in FOREIGN_LOGGERS:
        foreign = logging.getLogger(name)
        foreign.handlers.clear()
        foreign.propagate = True
    # uvicorn's access log stays off (`halsosamtal api` passes --no-access-log); the service
    # writes its own, one line per request (logger halsosamtal.access).
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    # Alembic lists the plugins it sets up at every schema check: noise in every process's log.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    root.setLevel((level or settings.log_level).upper())
    ours = [h for h in root.handlers if any(isinstance(f, RedactPersonalNumbers) for f in h.filters)]
    if ours:
        for handler in ours:
            handler.setFormatter(formatter_for(settings))
        return
    root.addHandler(make_handler(settings))


class LogLines(io.TextIOBase):
    """A text stream whose every line becomes a log record (``error: ...`` an ERROR, ``warning:
    ...`` a WARNING, anything else INFO): with JSON logs, what the CLI says on stderr comes out
    as JSON lines like everything else."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__()
        self.logger = logger
        self.pending = ""

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        self.pending += text
        while "\n" in self.pending:
            line, self.pending = self.pending.split("\n", 1)
            self._emit(line)
        return len(text)

    def flush(self) -> None:
        if self.pending:
            line, self.pending = self.pending, ""
            self._emit(line)

    def _emit(self, line: str) -> None:
        text = line.rstrip()
        if not text:
            return
        for prefix, level in (("error: ", logging.ERROR), ("warning: ", logging.WARNING)):
            if text.startswith(prefix):
                self.logger.log(level, text.removeprefix(prefix))
                return
        self.logger.info(text)
