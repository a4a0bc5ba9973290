"""Every connection-class database error is a 503 with Retry-After, never a 500; other errors
stay 500."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from halsosamtal.core.http import unexpected_problem


def _wrapped(orig: BaseException, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, orig, connection_invalidated=invalidated)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connect call failed"),
        ConnectionResetError(104, "Connection reset by peer"),
        OSError(113, "No route to host"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        _wrapped(asyncpg.InterfaceError("cannot switch to state 12; another operation (2) is in progress")),
        InterfaceError("SELECT 1", None, asyncpg.InterfaceError("connection is closed")),  # type: ignore[arg-type]
        _wrapped(RuntimeError("gone"), invalidated=True),
        _wrapped(asyncpg.AdminShutdownError("terminating connection due to administrator command")),
        PoolTimeout("QueuePool limit of size 10 overflow 10 reached, connection timed out"),
        ExceptionGroup("task group", [ConnectionRefusedError(111, "refused")]),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_connection_class_error_is_a_503_with_retry_after(error: Exception) -> None:
    body, status, headers = unexpected_problem(error, "/v1/x")
    assert (status, body["code"], headers) == (503, "database-unavailable", {"Retry-After": "1"})


def test_anything_else_is_a_500() -> None:
    for error in (ValueError("bug"), _wrapped(asyncpg.UniqueViolationError("duplicate key"))):
        _, status, headers = unexpected_problem(error, "/v1/x")
        assert (status, headers) == (500, {})
