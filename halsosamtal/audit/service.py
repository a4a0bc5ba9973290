"""Reading the access log: the region's follow-up (loggkontroll) by resident, client, acting
person and period; the resident's own log; retention's move of old events to archive files."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import os
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.audit import chain
from halsosamtal.core.errors import InvalidInput
from halsosamtal.core.http import LocalTime, decode_id_cursor, encode_id_cursor


class AccessEventOut(BaseModel):
    """One access event, as the region's log follow-up sees it."""

    id: int
    at: LocalTime
    client: str = Field(description="API client name, or 'cli'")
    role: str
    acting_person: str | None = Field(
        description="The clinician's HSA-id; for a portal 'resident:<id>' (the resident its token "
        "names) or 'resident' (asserted identity); the OS user for the CLI"
    )
    resident_id: int | None = Field(description="Whose data (internal id); null for an automated run")
    operation: str
    action: str
    purpose: str
    outcome: str
    request_id: str | None
    detail: dict[str, Any] | None = Field(None, description="Counts, for an automated run")
    sealed: bool = Field(description="The event has its place in the hash chain")


class AccessEventPage(BaseModel):
    items: list[AccessEventOut]
    next_cursor: str | None = Field(None, description="Pass it back as `cursor` for the next page")


class ResidentAccess(BaseModel):
    """One access to the resident's own data, as the resident is told of it."""

    at: LocalTime
    accessed_by: str = Field(description="The client (a care unit's system, the portal, an operator)")
    role: str
    acting_person: str | None
    what: str = Field(description="The operation, e.g. get_result")
    action: str
    purpose: str


_SELECT = """
SELECT e.id, e.at, e.client_name, e.role, e.acting_person, e.resident_id, e.operation, e.action,
       e.purpose, e.outcome, e.request_id, e.detail, e.hash IS NOT NULL AS sealed
FROM access_events e
WHERE (CAST(:resident AS bigint) IS NULL OR e.resident_id = :resident)
  AND (CAST(:client AS text) IS NULL OR e.client_name = :client)
  AND (CAST(:actor AS text) IS NULL OR e.acting_person = :actor)
  AND (CAST(:since AS timestamptz) IS NULL OR e.at >= :since)
  AND (CAST(:until AS timestamptz) IS NULL OR e.at < :until)
  AND (CAST(:after AS bigint) IS NULL OR e.id < :after)
ORDER BY e.id DESC
LIMIT :limit
"""


def _out(row: Any) -> AccessEventOut:
    return AccessEventOut(
        id=row.id,
        at=row.at,
        client=row.client_name,
        role=row.role,
        acting_person=row.acting_person,
        resident_id=row.resident_id,
        operation=row.operation,
        action=row.action,
        purpose=row.purpose,
        outcome=row.outcome,
        request_id=row.request_id,
        detail=row.detail,
        sealed=row.sealed,
    )


async def search(
    session: AsyncSession,
    *,
    resident_id: int | None = None,
    client: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> AccessEventPage:
    """Events newest first, filtered by resident, client, acting person and period (keyset pages)."""
    if since is not None and until is not None and until <= since:
        raise InvalidInput("until must be after since", field="until")
    after = decode_id_cursor(cursor)
    rows = (
        await session.execute(
            text(_SELECT),
            {
                "resident": resident_id,
                "client": client,
                "actor": actor,
                "since": since,
                "until": until,
                "after": after,
                "limit": limit + 1,
            },
        )
    ).all()
    items = [_out(r) for r in rows[:limit]]
    next_cursor = encode_id_cursor(items[-1].id) if len(rows) > limit else None
    return AccessEventPage(items=items, next_cursor=next_cursor)


CSV_FIELDS = (
    "id",
    "at",
    "client",
    "role",
    "acting_person",
    "resident_id",
    "operation",
    "action",
    "purpose",
    "outcome",
    "request_id",
    "sealed",
)


def to_csv(events: Sequence[AccessEventOut]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for e in events:
        writer.writerow([getattr(e, f).isoformat() if f == "at" else getattr(e, f) for f in CSV_FIELDS])
    return out.getvalue()


async def resident_log(session: AsyncSession, resident_id: int, *, limit: int = 500) -> list[ResidentAccess]:
    """Who has accessed the resident's data and when, newest first (automated runs, which touch
    no one's record in particular, are not in it)."""
    rows = await session.execute(
        text(
            "SELECT at, client_name, role, acting_person, operation, action, purpose FROM access_events "
            "WHERE resident_id = :r AND outcome = 'ok' ORDER BY id DESC LIMIT :limit"
        ),
        {"r": resident_id, "limit": limit},
    )
    return [
        ResidentAccess(
            at=r.at,
            accessed_by=r.client_name,
            role=r.role,
            acting_person=r.acting_person,
            what=r.operation,
            action=r.action,
            purpose=r.purpose,
        )
        for r in rows
    ]


class ArchiveResult(BaseModel):
    events: int
    first_seq: int | None = None
    last_seq: int | None = None
    file: str | None = None
    file_sha256: str | None = None


async def archive(
    session: AsyncSession, before: datetime, directory: Path, *, actor: str, write: bool = True
) -> ArchiveResult:
    """Move sealed events older than ``before`` to an archive file (JSON lines, each event with
    its chain columns), record the archive (where the chain continues), then remove them from
    the table, all in the caller's transaction: nothing is removed that is not in a file
    written and synced first. Only a leading run of the chain is moved, so what stays verifies
    from where the archive ended."""
    stop = (
        await session.execute(
            text("SELECT min(seq) FROM access_events WHERE seq IS NOT NULL AND at >= :before"),
            {"before": before},
        )
    ).scalar_one()
    rows = (
        await session.execute(
            text(
                "SELECT id, at, client_id, client_name, role, acting_person, resident_id, operation, action, "
                "purpose, outcome, request_id, detail, seq, prev_hash, hash FROM access_events "
                "WHERE seq IS NOT NULL AND at < :before "
                "AND (CAST(:stop AS bigint) IS NULL OR seq < :stop) ORDER BY seq"
            ),
            {"before": before, "stop": stop},
        )
    ).all()
    if not rows:
        return ArchiveResult(events=0)
    if not write:  # what a run would move, and nothing written
        return ArchiveResult(events=len(rows), first_seq=rows[0].seq, last_seq=rows[-1].seq)
    path, sha = await asyncio.to_thread(_write_archive, directory, rows)
    await session.execute(
        text(
            "INSERT INTO audit_archives (before, events, first_seq, last_seq, last_hash, file, "
            "file_sha256, actor) VALUES (:before, :n, :first, :last, :hash, :file, :sha, :actor)"
        ),
        {
            "before": before,
            "n": len(rows),
            "first": rows[0].seq,
            "last": rows[-1].seq,
            "hash": bytes(rows[-1].hash),
            "file": str(path),
            "sha": sha,
            "actor": actor,
        },
    )
    await session.execute(text("SET LOCAL halsosamtal.audit_archiving = 'on'"))
    await session.execute(
        text("DELETE FROM access_events WHERE seq >= :first AND seq <= :last"),
        {"first": rows[0].seq, "last": rows[-1].seq},
    )
    return ArchiveResult(
        events=len(rows),
        first_seq=rows[0].seq,
        last_seq=rows[-1].seq,
        file=str(path),
        file_sha256=sha,
    )


def _write_archive(directory: Path, rows: Sequence[Any]) -> tuple[Path, str]:
    """Write the events as JSON lines (with their chain columns), synced; returns the file and
    its sha256."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"access-events-{rows[0].seq}-{rows[-1].seq}.jsonl"
    digest = hashlib.sha256()
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as f:
        for r in rows:
            line = orjson.dumps(
                {
                    **{k: getattr(r, k) for k in chain.FIELDS},
                    "client_id": r.client_id,
                    "seq": r.seq,
                    "prev_hash": bytes(r.prev_hash).hex(),
                    "hash": bytes(r.hash).hex(),
                },
                option=orjson.OPT_SORT_KEYS,
            )
            digest.update(line + b"\n")
            f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return path, digest.hexdigest()
