"""Writing access events: who (client, role, acting person), whose data (resident ids), what
(operation, action), why (purpose), how it went (outcome), and the request id.

A ``Trail`` collects what one request or command touched and writes it set-based, one event per
resident and action, in the caller's transaction: the access and its record commit together.
Residents a route knows only by a query (by personnummer, say) are found by the event's own
INSERT ... SELECT: no round trip of their own, and none at all with the access log off.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

Action = Literal["read", "create", "update", "delete"]

DEFAULT_PURPOSE = {
    "ehr": "care",
    "portal": "resident-self-service",
    "operator": "programme-administration",
    "cli": "programme-administration",
    "worker": "programme-processing",
}
"""The purpose of an access when the caller names none, by role."""

PURPOSE_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,63}$")
ACTING_PERSON_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,99}$")


@dataclass(frozen=True)
class Who:
    """The accessor: the API client (or the CLI), its role, the person behind it, and why."""

    client_id: int | None
    client_name: str
    role: str
    acting_person: str | None = None
    purpose: str | None = None
    request_id: str | None = None

    @property
    def reason(self) -> str:
        return self.purpose or DEFAULT_PURPOSE.get(self.role, "programme-administration")


_INSERT = text("""
INSERT INTO access_events (client_id, client_name, role, acting_person, resident_id, operation,
                           action, purpose, outcome, request_id, detail)
SELECT CAST(:client_id AS bigint), CAST(:client_name AS text), CAST(:role AS text),
       CAST(:acting_person AS text), r, CAST(:operation AS text), CAST(:action AS text),
       CAST(:purpose AS text), CAST(:outcome AS text), CAST(:request_id AS text), CAST(:detail AS jsonb)
FROM unnest(CAST(:ids AS bigint[])) AS r
""")


def _params(
    who: Who, operation: str, action: Action, outcome: str, detail: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "client_id": who.client_id,
        "client_name": who.client_name,
        "role": who.role,
        "acting_person": who.acting_person,
        "operation": operation,
        "action": action,
        "purpose": who.reason,
        "outcome": outcome,
        "request_id": who.request_id,
        "detail": orjson.dumps(detail).decode() if detail is not None else None,
    }


async def record(
    session: AsyncSession,
    who: Who,
    operation: str,
    action: Action,
    resident_ids: Iterable[int],
    *,
    outcome: str = "ok",
) -> int:
    """One event per distinct resident; returns how many."""
    ids = sorted(set(resident_ids))
    if not ids:
        return 0
    await session.execute(_INSERT, {**_params(who, operation, action, outcome, None), "ids": ids})
    return len(ids)


@dataclass(frozen=True)
class Residents:
    """Residents named by a query: a SELECT of their ids (one column) and its parameters, run
    inside the access log's own INSERT ... SELECT."""

    sql: str
    params: Mapping[str, Any] = field(default_factory=dict)


@functools.lru_cache(maxsize=128)
def _insert_selected(resident_ids_sql: str) -> TextClause:
    """The INSERT ... SELECT around a query of resident ids; built once per query text."""
    return text(
        "INSERT INTO access_events (client_id, client_name, role, acting_person, resident_id, operation, "
        "action, purpose, outcome, request_id, detail) "
        "SELECT DISTINCT CAST(:client_id AS bigint), CAST(:client_name AS text), CAST(:role AS text), "
        "CAST(:acting_person AS text), s.resident_id, CAST(:operation AS text), CAST(:action AS text), "
        "CAST(:purpose AS text), CAST(:outcome AS text), CAST(:request_id AS text), CAST(:detail AS jsonb) "
        f"FROM ({resident_ids_sql}) AS s(resident_id)"
    )


async def record_selected(
    session: AsyncSession,
    who: Who,
    operation: str,
    action: Action,
    resident_ids_sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    outcome: str = "ok",
) -> int:
    """One event per resident id the given SELECT returns (its one column), set-based, in one
    statement: for bulk changes such as a register import, and for residents a route names by
    personnummer (``Trail.add_query``), without the ids passing through Python."""
    result = await session.execute(
        _insert_selected(resident_ids_sql),
        {**dict(params or {}), **_params(who, operation, action, outcome, None)},
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def record_run(
    session: AsyncSession, who: Who, operation: str, action: Action, detail: Mapping[str, Any]
) -> None:
    """One event for an automated run over many residents (a batch, a release, a reminder run):
    what it did, in counts, with no resident (it is processing, not a person's access)."""
    await session.execute(_INSERT, {**_params(who, operation, action, "ok", detail), "ids": [None]})


@dataclass
class Trail:
    """What one request or command accessed, written when it finishes."""

    who: Who
    operation: str
    enabled: bool = True
    _pending: dict[Action, set[int]] = field(default_factory=dict)
    _queries: dict[Action, list[Residents]] = field(default_factory=dict)
    _runs: list[tuple[Action, Mapping[str, Any]]] = field(default_factory=list)

    def add(self, action: Action, resident_ids: Iterable[int | None]) -> None:
        self._pending.setdefault(action, set()).update(i for i in resident_ids if i is not None)

    def add_query(self, action: Action, residents: Residents) -> None:
        """The residents a query of their ids selects (run by the event's own INSERT ... SELECT
        when the trail is written; never with the access log off)."""
        if self.enabled:
            self._queries.setdefault(action, []).append(residents)

    def add_run(self, action: Action, detail: Mapping[str, Any]) -> None:
        """An automated run over many residents started by this request (see ``record_run``)."""
        self._runs.append((action, detail))

    @property
    def pending(self) -> bool:
        return any(self._pending.values()) or any(self._queries.values()) or bool(self._runs)

    async def flush(self, session: AsyncSession, *, outcome: str = "ok") -> int:
        written = 0
        if self.enabled:
            for action, ids in self._pending.items():
                written += await record(session, self.who, self.operation, action, ids, outcome=outcome)
            for action, queries in self._queries.items():
                for q in queries:
                    written += await record_selected(
                        session, self.who, self.operation, action, q.sql, q.params, outcome=outcome
                    )
            for action, detail in self._runs:
                await record_run(session, self.who, self.operation, action, detail)
                written += 1
        self._pending.clear()
        self._queries.clear()
        self._runs.clear()
        return written


def cli_who(purpose: str | None = None) -> Who:
    """The accessor of a CLI command: the operator at the terminal (the OS user)."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (a container with a bare uid)
        import os

        user = f"uid {os.getuid()}"
    return Who(client_id=None, client_name="cli", role="cli", acting_person=user, purpose=purpose)


def log_cli_run(operation: str, action: Action, detail: Mapping[str, Any]) -> None:
    """Record an automated run started from the command line (a release, a reminder run, a
    batch), in a transaction of its own after the run's."""
    from halsosamtal.core.cli import run_in_transaction
    from halsosamtal.core.settings import get_settings

    if get_settings().audit_log:
        run_in_transaction(lambda s: record_run(s, cli_who(), operation, action, detail))


def log_cli_access(operation: str, action: Action, resident_ids: Iterable[int]) -> None:
    """Record a command's access to residents' data, in a transaction of its own."""
    from halsosamtal.core.cli import run_in_transaction
    from halsosamtal.core.settings import get_settings

    ids = list(resident_ids)
    if get_settings().audit_log and ids:
        run_in_transaction(lambda s: record(s, cli_who(), operation, action, ids))
