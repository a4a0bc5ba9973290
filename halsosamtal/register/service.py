"""One register import: the residents' upsert, then the invitations it changes, together."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from halsosamtal.audit.trail import Who, record_selected
from halsosamtal.core.imports import Delimiter, Encoding, ImportSummary, Reject
from halsosamtal.invitations.lifecycle import apply_register_changes
from halsosamtal.residents.importer import CREATED_NOW, UPDATED_NOW, import_residents


async def import_register(
    session: AsyncSession,
    chunks: AsyncIterator[bytes],
    *,
    as_of: dt.date,
    snapshot: bool,
    source: str,
    actor: str,
    reject_limit: int,
    who: Who,
    on_reject: Callable[[Reject], None] | None = None,
    audit: bool = True,
    delimiter: Delimiter | None = None,
    encoding: Encoding | None = None,
) -> ImportSummary:
    """Import a residents file and, in the same transaction, withdraw the invitations of
    residents who died or moved away and move open ones with a listing to another unit. Each
    resident the import inserted or changed is recorded in the access log (set-based)."""
    summary = await import_residents(
        session,
        chunks,
        as_of=as_of,
        snapshot=snapshot,
        source=source,
        actor=actor,
        reject_limit=reject_limit,
        on_reject=on_reject,
        delimiter=delimiter,
        encoding=encoding,
    )
    await apply_register_changes(session, as_of, actor=actor)
    if audit:
        await record_selected(session, who, "import_residents", "create", CREATED_NOW)
        await record_selected(session, who, "import_residents", "update", UPDATED_NOW)
    return summary
