from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base, TimestampMixin

# planned: created, its message waits for the send date; open: the invitation was sent and
# awaits an answer (again after a cancelled booking or a no-show); booked: a time is booked;
# attended: the resident came, the result is awaited; completed: the result is in; declined,
# withdrawn (died or moved) and expired are final.
INVITATION_STATUSES = (
    "planned",
    "open",
    "booked",
    "attended",
    "completed",
    "declined",
    "withdrawn",
    "expired",
)


class Invitation(TimestampMixin, Base):
    """One resident invited for one programme year and age. At most one per resident, year, age."""

    __tablename__ = "invitations"
    __table_args__ = (
        UniqueConstraint("resident_id", "year", "age"),
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in INVITATION_STATUSES) + ")", name="status"
        ),
        CheckConstraint("reminders_sent >= 0", name="reminders_not_negative"),
        Index("ix_invitations_year_care_unit_id_status", "year", "care_unit_id", "status"),
        Index("ix_invitations_status_planned_send_on", "status", "planned_send_on"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # No foreign key to programme_years or batch_runs: each costs a row lock per invitation in
    # the batch, and neither a year nor a batch record is ever deleted.
    year: Mapped[int] = mapped_column(SmallInteger)
    age: Mapped[int] = mapped_column(SmallInteger)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="RESTRICT"))
    care_unit_id: Mapped[int] = mapped_column(
        ForeignKey("care_units.id", ondelete="RESTRICT"),
        comment="The unit that invites: where the resident is listed (moves with the listing until booked)",
    )
    batch_id: Mapped[int | None] = mapped_column(BigInteger, comment="The batch run that created it")
    planned_send_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(Text, default="planned", server_default="planned")
    sent_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the invitation message was sent"
    )
    reminders_sent: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    last_message_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[date] = mapped_column(Date)


class InvitationEvent(Base):
    """Append-only history of an invitation's status: from, to, when, why, by whom."""

    __tablename__ = "invitation_events"
    __table_args__ = (Index("ix_invitation_events_invitation_id_id", "invitation_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(Text)
    to_status: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text, comment="API client name, 'cli' or 'worker'")


class BatchRun(Base):
    """One run of a year's invitation batch, for operators to follow and for resuming."""

    __tablename__ = "batch_runs"
    __table_args__ = (CheckConstraint("state IN ('queued', 'running', 'done', 'failed')", name="state"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(ForeignKey("programme_years.year", ondelete="RESTRICT"))
    state: Mapped[str] = mapped_column(Text, default="queued", server_default="queued")
    requested_by: Mapped[str] = mapped_column(Text)
    as_of: Mapped[date | None] = mapped_column(
        Date, comment="Plan as on this day; NULL: the day the run starts"
    )
    total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created: Mapped[int] = mapped_column(
        Integer, default=0, server_default="0", comment="Invitations this run created"
    )
    errors: Mapped[list[Any]] = mapped_column(JSONB, default=list, server_default="[]")
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    inline: Mapped[bool] = mapped_column(
        Boolean,
        default=False,
        server_default="false",
        comment="Run by the command that asked (the CLI), never by the worker",
    )
    lease_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True),
        comment="Whoever runs it renews this while alive; past it, the worker resumes the batch "
        "(or, inline, ends it as failed)",
    )
    resumes: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        comment="Times the worker took it over from a run that stopped; also its arq job's generation",
    )
