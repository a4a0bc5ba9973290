from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base, TimestampMixin


class ProgrammeYear(TimestampMixin, Base):
    """The programme's rules for one calendar year. Each year is its own row: changing next
    year's rules never touches this year's."""

    __tablename__ = "programme_years"
    __table_args__ = (
        CheckConstraint("year BETWEEN 2000 AND 2100", name="year_range"),
        CheckConstraint("cardinality(target_ages) >= 1", name="has_ages"),
        CheckConstraint("talk_rate >= 0 AND start_grant >= 0", name="rates_not_negative"),
        CheckConstraint("expected_uptake > 0 AND expected_uptake <= 1", name="uptake_range"),
        CheckConstraint("valid_until > make_date(year, 1, 1)", name="valid_after_start"),
        CheckConstraint("booking_lead_days >= 0", name="lead_not_negative"),
        CheckConstraint("appointment_reminder_days >= 0", name="appointment_reminder_not_negative"),
    )

    year: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    target_ages: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger))
    talk_rate: Mapped[Decimal] = mapped_column(Numeric(10, 2), comment="SEK per completed talk")
    start_grant: Mapped[Decimal] = mapped_column(
        Numeric(10, 2),
        default=Decimal(0),
        server_default="0",
        comment="SEK per listed resident in the target ages, paid once for the year",
    )
    reminder_days: Mapped[list[int]] = mapped_column(
        ARRAY(SmallInteger), comment="Days after the invitation for each reminder"
    )
    valid_until: Mapped[date] = mapped_column(Date, comment="Last day an invitation can be used")
    expected_uptake: Mapped[Decimal] = mapped_column(
        Numeric(4, 3), default=Decimal("0.5"), server_default="0.5"
    )
    booking_lead_days: Mapped[int] = mapped_column(
        Integer,
        default=7,
        server_default="7",
        comment="A time must be booked at least this many days ahead (lab samples)",
    )
    appointment_reminder_days: Mapped[int] = mapped_column(Integer, default=2, server_default="2")


class ProgrammeYearRevision(Base):
    """Append-only record of every change to a programme year: who, when, and the whole rule set."""

    __tablename__ = "programme_year_revisions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    year: Mapped[int] = mapped_column(ForeignKey("programme_years.year", ondelete="RESTRICT"), index=True)
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    changed_by: Mapped[str] = mapped_column(Text)
    rules: Mapped[dict[str, Any]] = mapped_column(JSONB)
