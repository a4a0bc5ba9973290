"""The access log's tables: ``access_events`` (append-only, hash-chained) and ``audit_archives``
(what retention moved out to archive files, and where the chain continues)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, LargeBinary, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base

ACTIONS = ("read", "create", "update", "delete")


class AccessEvent(Base):
    """One access to one resident's personal data (or one system run, with no resident)."""

    __tablename__ = "access_events"
    __table_args__ = (
        CheckConstraint("action IN (" + ", ".join(f"'{a}'" for a in ACTIONS) + ")", name="action"),
        Index("ix_access_events_resident_at", "resident_id", "at"),
        Index("ix_access_events_client_at", "client_name", "at"),
        Index("ix_access_events_actor_at", "acting_person", "at"),
        Index("ix_access_events_at", "at"),
        Index("ix_access_events_unsealed", "id", postgresql_where=text("hash IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    client_id: Mapped[int | None] = mapped_column(BigInteger, comment="API client; NULL for the CLI")
    client_name: Mapped[str] = mapped_column(Text, comment="API client name, or 'cli'")
    role: Mapped[str] = mapped_column(Text, comment="operator, portal, ehr or cli")
    acting_person: Mapped[str | None] = mapped_column(
        Text, comment="The person behind the client: a clinician's HSA-id, 'resident', an OS user"
    )
    resident_id: Mapped[int | None] = mapped_column(
        BigInteger, comment="Whose data (internal id, never the personnummer); NULL for a system run"
    )
    operation: Mapped[str] = mapped_column(Text, comment="API operation id or CLI command")
    action: Mapped[str] = mapped_column(Text, comment="read, create, update or delete")
    purpose: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, comment="ok, or refused with the status")
    request_id: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB, comment="Counts of a system run")
    seq: Mapped[int | None] = mapped_column(BigInteger, unique=True, comment="Position in the chain")
    prev_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    hash: Mapped[bytes | None] = mapped_column(LargeBinary, comment="sha256(prev_hash || the event)")


class AuditArchive(Base):
    """Events moved by retention to an archive file: the chain continues after ``last_hash``."""

    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    archived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    before: Mapped[datetime] = mapped_column(DateTime(timezone=True), comment="Events older than this")
    events: Mapped[int] = mapped_column(BigInteger)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary)
    file: Mapped[str] = mapped_column(Text)
    file_sha256: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text)
