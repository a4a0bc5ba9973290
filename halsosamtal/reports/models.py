from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, Date, DateTime, Integer, Numeric, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base


class ReimbursementClosing(Base):
    """A month of the reimbursement statement that an operator has reported (closed). Its lines
    are derived from ``result_events``, never stored; a closed month never changes because a
    later retraction becomes a reversal in the month it happens. "Later" is decided by
    ``last_event_id``: the close locks ``result_events`` against writers, so every event with a
    greater id was recorded after the close (a timestamp taken at a transaction's start cannot
    say that). ``lines``, ``total`` and ``digest`` record what the month held when it was
    closed, so a later recomputation can prove it is the same."""

    __tablename__ = "reimbursement_closings"
    __table_args__ = (
        CheckConstraint("extract(day FROM month) = 1", name="first_of_month"),
        CheckConstraint("digest ~ '^[0-9a-f]{64}$'", name="digest_format"),
    )

    month: Mapped[date] = mapped_column(Date, primary_key=True, comment="First day of the month")
    closed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    closed_by: Mapped[str] = mapped_column(Text, comment="API client name or 'cli'")
    last_event_id: Mapped[int] = mapped_column(
        BigInteger, comment="The last result event the close saw: later ones come after the close"
    )
    lines: Mapped[int] = mapped_column(Integer, comment="Statement lines of the month when closed")
    total: Mapped[Decimal] = mapped_column(Numeric(14, 2), comment="SEK, all units, when closed")
    digest: Mapped[str] = mapped_column(Text, comment="sha256 of the month's lines when closed")


class DesoCni(Base):
    """Care Need Index per DeSO area, as last imported (``halsosamtal import cni``)."""

    __tablename__ = "deso_cni"
    __table_args__ = (CheckConstraint("deso ~ '^[0-9]{4}[ABC][0-9]{4}$'", name="deso_code"),)

    deso: Mapped[str] = mapped_column(Text, primary_key=True)
    cni: Mapped[Decimal] = mapped_column(Numeric(10, 4))
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
