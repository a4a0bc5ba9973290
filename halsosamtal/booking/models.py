from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base

# booked: the time is the resident's; cancelled: by the resident, the centre or because the
# invitation closed (its slot is free again at once); attended and no_show: marked by the
# centre after the time. A move keeps the appointment and changes its slot.
APPOINTMENT_STATUSES = ("booked", "cancelled", "attended", "no_show")
# The statuses that hold their slot. A cancelled appointment frees it.
HOLDS_SLOT = ("booked", "attended", "no_show")


class Slot(Base):
    """A bookable time at a care unit, published by the unit's EHR adapter or an operator."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("care_unit_id", "resource", "starts_at"),
        CheckConstraint("ends_at > starts_at", name="ends_after_start"),
        CheckConstraint("ends_at - starts_at <= interval '8 hours'", name="at_most_8_hours"),
        Index(
            "ix_slots_open_by_unit_and_time",
            "care_unit_id",
            "starts_at",
            postgresql_where=text("withdrawn_at IS NULL"),
        ),
        # What a portal's search reads: only free times, however full the calendar is.
        Index(
            "ix_slots_free_by_unit_and_time",
            "care_unit_id",
            "starts_at",
            postgresql_where=text("withdrawn_at IS NULL AND held_by IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    care_unit_id: Mapped[int] = mapped_column(ForeignKey("care_units.id", ondelete="RESTRICT"))
    starts_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    resource: Mapped[str] = mapped_column(
        Text,
        default="",
        server_default="",
        comment="The practitioner or room the unit books this time for; '' when it has one",
    )
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_by: Mapped[str] = mapped_column(Text)
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    withdrawn_by: Mapped[str | None] = mapped_column(Text)
    held_by: Mapped[int | None] = mapped_column(
        BigInteger,
        comment="The appointment holding the time (booked, attended or no-show), kept with it in "
        "the same transaction; the unique index on appointments is the guarantee",
    )


class Appointment(Base):
    """A resident's booked time for an invitation. Postgres guarantees one holder per slot and
    one booked appointment per invitation (partial unique indexes), whatever races."""

    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{s}'" for s in APPOINTMENT_STATUSES) + ")", name="status"
        ),
        Index(
            "uq_appointments_slot_id_holding",
            "slot_id",
            unique=True,
            postgresql_where=text("status IN (" + ", ".join(f"'{s}'" for s in HOLDS_SLOT) + ")"),
        ),
        Index(
            "uq_appointments_invitation_id_booked",
            "invitation_id",
            unique=True,
            postgresql_where=text("status = 'booked'"),
        ),
        Index("ix_appointments_invitation_id", "invitation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="RESTRICT"))
    slot_id: Mapped[int] = mapped_column(
        ForeignKey("slots.id", ondelete="RESTRICT"), comment="The current time; a move changes it"
    )
    status: Mapped[str] = mapped_column(Text, default="booked", server_default="booked")
    booked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    booked_by: Mapped[str] = mapped_column(Text, comment="API client name or 'cli'")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AppointmentEvent(Base):
    """Append-only history of an appointment: from, to, which slot, when, why, by which client."""

    __tablename__ = "appointment_events"
    __table_args__ = (Index("ix_appointment_events_appointment_id_id", "appointment_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(Text, comment="Null when the time was booked")
    to_status: Mapped[str] = mapped_column(Text)
    slot_id: Mapped[int] = mapped_column(BigInteger, comment="The slot after the change")
    previous_slot_id: Mapped[int | None] = mapped_column(BigInteger, comment="For a move: the slot before")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(Text, comment="API client name, 'cli' or 'worker'")
