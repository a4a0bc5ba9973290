from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base
from halsosamtal.messaging.templates import MESSAGE_KINDS

# planned: waits for its send date; queued: released, to be delivered; sending: claimed by a
# delivery attempt; sent and failed are final; cancelled: no longer to be sent (the resident
# booked, declined, died or moved before it went out).
MESSAGE_STATUSES = ("planned", "queued", "sending", "sent", "failed", "cancelled")
CHANNELS = ("digital_mailbox", "sms", "letter", "letter_protected")


class Message(Base):
    """The transactional outbox: every message to a resident is a row first, written in the same
    transaction as the change that causes it; the worker delivers it. Its id is the
    Idempotency-Key, so a retried delivery is never a second message."""

    __tablename__ = "messages"
    __table_args__ = (
        CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in MESSAGE_KINDS) + ")", name="kind"),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in MESSAGE_STATUSES) + ")", name="status"),
        CheckConstraint(
            "channel IS NULL OR channel IN (" + ", ".join(f"'{c}'" for c in CHANNELS) + ")",
            name="channel",
        ),
        CheckConstraint("status IN ('planned', 'cancelled') OR body IS NOT NULL", name="rendered"),
        Index("ix_messages_status_send_on", "status", "send_on"),
        Index(
            "ix_messages_deliverable",
            "next_attempt_at",
            postgresql_where=text("status = 'queued'"),
        ),
        Index("ix_messages_resident_id", "resident_id"),
        Index("ix_messages_invitation_id", "invitation_id"),
        Index(
            "ix_messages_appointment_id",
            "appointment_id",
            postgresql_where=text("appointment_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # No foreign key on resident_id: the message's invitation already ties it to the resident,
    # and the batch writes one message per invitation, where each check costs a row lock.
    resident_id: Mapped[int] = mapped_column(BigInteger)
    invitation_id: Mapped[int | None] = mapped_column(ForeignKey("invitations.id", ondelete="RESTRICT"))
    appointment_id: Mapped[int | None] = mapped_column(
        ForeignKey("appointments.id", ondelete="RESTRICT"), comment="For messages about a booked time"
    )
    appointment_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="The time the message is about, as it was when written"
    )
    previous_appointment_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="For booking_moved: the time that no longer holds"
    )
    kind: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(
        SmallInteger, default=0, server_default="0", comment="Reminder number; 0 for other kinds"
    )
    send_on: Mapped[date] = mapped_column(Date, comment="Not released before this day")
    status: Mapped[str] = mapped_column(Text, default="planned", server_default="planned")
    channel: Mapped[str | None] = mapped_column(Text, comment="Chosen when released")
    language: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text, comment="Rendered text, as sent")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeliveryAttempt(Base):
    """Each try to deliver a message, with its outcome (append-only)."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    gateway: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, comment="sent, retry or failed")
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
