"""Typed domain errors and their RFC 9457 ``application/problem+json`` rendering."""

from __future__ import annotations

from typing import Any, ClassVar

from halsosamtal.core.context import current_request_id

PROBLEM_TYPE_PREFIX = "urn:halsosamtal:problem:"


class DomainError(Exception):
    """An expected failure with a stable code and HTTP status.

    Services raise these; the API renders them as problem+json and the CLI prints them.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance is not None:
            body["instance"] = instance
        body.update(self.extra)
        if (rid := current_request_id()) is not None:
            body["request_id"] = rid
        return body


class NotFound(DomainError):
    code = "not-found"
    status = 404
    title = "Not found"


class Conflict(DomainError):
    code = "conflict"
    status = 409
    title = "Conflict"


class InvalidInput(DomainError):
    """Input that is well-formed JSON but breaks a domain rule (names the field)."""

    code = "invalid-input"
    status = 422
    title = "Invalid input"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    title = "Unauthenticated"


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class SchemaOutOfDate(RuntimeError):
    """The database schema is not at the migrations' head; the process must not start."""
