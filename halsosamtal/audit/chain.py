"""The access log's hash chain: sealing events as their transactions finish, and checking it.

An event is sealed once: it gets the next position (``seq``), the previous event's hash
(``prev_hash``) and its own ``hash`` = sha256(prev_hash || its fields, canonically encoded).
The sealer sees only committed events, so an event whose transaction commits late is simply
sealed by a later round, further down the chain: nothing is skipped, and the chain's order is
the order events were sealed. Writing events takes no lock; sealing runs on the worker every
few seconds (and ``halsosamtal audit seal``), one sealer at a time.

``verify`` recomputes the chain from its start (or from where retention's last archive left
off) and names the first event whose hash does not follow: an event edited or removed past the
table's trigger (by a superuser, on disk) breaks the chain there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

SEAL_LOCK = 7_364_117
"""Advisory lock: one sealer at a time."""
SEAL_CHUNK = 5000
GENESIS = b"\x00" * 32
"""The previous hash of the very first event."""

FIELDS = (
    "id",
    "at",
    "client_id",
    "client_name",
    "role",
    "acting_person",
    "resident_id",
    "operation",
    "action",
    "purpose",
    "outcome",
    "request_id",
    "detail",
)


def canonical(row: Any) -> bytes:
    """An event's fields as the bytes its hash covers (a JSON array in FIELDS' order; times in
    UTC to the microsecond)."""
    values = []
    for name in FIELDS:
        value = getattr(row, name)
        if name == "at":
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        values.append(value)
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def link(prev_hash: bytes, row: Any) -> bytes:
    return hashlib.sha256(prev_hash + canonical(row)).digest()


_COLUMNS = ", ".join(FIELDS)


async def _head(session: AsyncSession) -> tuple[int, bytes]:
    """The last sealed position and its hash; where retention's archive ended when the table's
    sealed events were all archived; the genesis when nothing was ever sealed."""
    row = (
        await session.execute(
            text("SELECT seq, hash FROM access_events WHERE seq IS NOT NULL ORDER BY seq DESC LIMIT 1")
        )
    ).first()
    if row is not None:
        return int(row.seq), bytes(row.hash)
    archived = (
        await session.execute(
            text("SELECT last_seq, last_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1")
        )
    ).first()
    if archived is not None:
        return int(archived.last_seq), bytes(archived.last_hash)
    return 0, GENESIS


async def seal(session: AsyncSession, *, limit: int = SEAL_CHUNK) -> int:
    """Seal up to ``limit`` committed events, in the caller's transaction (which the caller
    commits); returns how many."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
    rows = (
        await session.execute(
            text(f"SELECT {_COLUMNS} FROM access_events WHERE hash IS NULL ORDER BY id LIMIT :limit"),
            {"limit": limit},
        )
    ).all()
    if not rows:
        return 0
    seq, prev = await _head(session)
    seqs: list[int] = []
    prevs: list[bytes] = []
    hashes: list[bytes] = []
    for row in rows:
        seq += 1
        digest = link(prev, row)
        seqs.append(seq)
        prevs.append(prev)
        hashes.append(digest)
        prev = digest
    await session.execute(
        text(
            "UPDATE access_events e SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:seqs AS bigint[]), CAST(:prevs AS bytea[]), "
            "CAST(:hashes AS bytea[])) AS v(id, seq, prev_hash, hash) WHERE e.id = v.id"
        ),
        {"ids": [r.id for r in rows], "seqs": seqs, "prevs": prevs, "hashes": hashes},
    )
    return len(rows)


class Verdict(BaseModel):
    """What ``verify`` found."""

    ok: bool = Field(True, description="The chain is whole")
    checked: int = Field(description="Sealed events whose links were checked")
    first_seq: int | None = Field(description="The first position checked")
    last_seq: int | None = Field(description="The last position checked")
    unsealed: int = Field(description="Events not sealed yet (their transactions just finished)")
    broken_at_seq: int | None = Field(None, description="The first broken link's position")
    broken_event_id: int | None = Field(None, description="The first broken link's event id")
    reason: str | None = Field(None, description="What is wrong there")


async def verify(session: AsyncSession, *, chunk: int = 20_000) -> Verdict:
    """Walk the sealed chain in order and name the first broken link (a hash that does not
    follow, a position missing, a chain that does not start where the last archive ended)."""
    archived = (
        await session.execute(
            text("SELECT last_seq, last_hash FROM audit_archives ORDER BY last_seq DESC LIMIT 1")
        )
    ).first()
    expected_seq, prev = (int(archived.last_seq), bytes(archived.last_hash)) if archived else (0, GENESIS)
    unsealed = int(
        (await session.execute(text("SELECT count(*) FROM access_events WHERE hash IS NULL"))).scalar_one()
    )
    verdict = Verdict(checked=0, first_seq=None, last_seq=None, unsealed=unsealed)
    after = expected_seq
    while True:
        rows: Sequence[Any] = (
            await session.execute(
                text(
                    f"SELECT {_COLUMNS}, seq, prev_hash, hash FROM access_events "
                    "WHERE seq > :after ORDER BY seq LIMIT :limit"
                ),
                {"after": after, "limit": chunk},
            )
        ).all()
        if not rows:
            return verdict
        for row in rows:
            expected_seq += 1
            if verdict.first_seq is None:
                verdict.first_seq = row.seq
            if row.seq != expected_seq:
                return _broken(verdict, row, f"position {expected_seq} is missing (the next is {row.seq})")
            if bytes(row.prev_hash) != prev:
                return _broken(verdict, row, "its previous hash is not the hash of the event before it")
            if bytes(row.hash) != link(prev, row):
                return _broken(verdict, row, "its fields do not match its hash (the event was changed)")
            prev = bytes(row.hash)
            verdict.checked += 1
            verdict.last_seq = row.seq
        after = rows[-1].seq


def _broken(verdict: Verdict, row: Any, reason: str) -> Verdict:
    verdict.ok = False
    verdict.broken_at_seq = row.seq
    verdict.broken_event_id = row.id
    verdict.reason = reason
    return verdict
