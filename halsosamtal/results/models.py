from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base

RESULT_STATUSES = ("completed", "retracted")
RESULT_EVENT_KINDS = ("completed", "amended", "retracted")


class Result(Base):
    """The outcome of one invitation's health talk, as the centre's EHR records it. Its content
    lives in versions: an amendment adds one, the earlier are kept. At most one per invitation."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("invitation_id"),
        UniqueConstraint("care_unit_id", "external_id"),
        CheckConstraint("status IN (" + ", ".join(f"'{s}'" for s in RESULT_STATUSES) + ")", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    invitation_id: Mapped[int] = mapped_column(ForeignKey("invitations.id", ondelete="RESTRICT"))
    care_unit_id: Mapped[int] = mapped_column(
        ForeignKey("care_units.id", ondelete="RESTRICT"), comment="The unit whose EHR posted it"
    )
    external_id: Mapped[str] = mapped_column(Text, comment="The EHR's own id of the record")
    status: Mapped[str] = mapped_column(Text, default="completed", server_default="completed")
    current_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ResultVersion(Base):
    """One version of a result: what was posted, exactly as validated, with what the service
    derived from it under the rule versions named here. Never changed once written."""

    __tablename__ = "result_versions"
    __table_args__ = (
        UniqueConstraint("result_id", "version"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="RESTRICT"))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(Text, comment="sha256 of the canonical posted content")
    content: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="The posted content, canonical")
    derived: Mapped[dict[str, Any]] = mapped_column(
        JSONB, comment="What the service derived (BMI, SCORE2, findings), as computed then"
    )
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="RESTRICT"))
    held_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), comment="When the talk took place")
    practitioner_hsa_id: Mapped[str] = mapped_column(Text)
    # The resident as the result describes them (from the register at posting).
    sex: Mapped[str] = mapped_column(Text)
    age: Mapped[int] = mapped_column(SmallInteger, comment="Age at the talk")
    # Measurements, as posted.
    systolic: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    diastolic: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    height_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    weight_kg: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    waist_cm: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    fasting_glucose: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    hba1c: Mapped[Decimal | None] = mapped_column(Numeric(5, 1))
    total_cholesterol: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    hdl: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    ldl: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    triglycerides: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    known_diabetes: Mapped[bool] = mapped_column(Boolean)
    known_cvd: Mapped[bool] = mapped_column(Boolean)
    # Derived by the service.
    bmi: Mapped[Decimal | None] = mapped_column(Numeric(4, 1))
    score2_percent: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    score2_category: Mapped[str | None] = mapped_column(
        Text, comment="low_to_moderate, high or very_high; null when SCORE2 does not apply"
    )
    score2_not_applicable: Mapped[str | None] = mapped_column(Text, comment="Why there is no SCORE2")
    # Living habits: finding (healthy/unhealthy) and the action taken, per habit.
    tobacco_finding: Mapped[str] = mapped_column(Text)
    alcohol_finding: Mapped[str] = mapped_column(Text)
    physical_activity_finding: Mapped[str] = mapped_column(Text)
    diet_finding: Mapped[str] = mapped_column(Text)
    tobacco_action: Mapped[str] = mapped_column(Text)
    alcohol_action: Mapped[str] = mapped_column(Text)
    physical_activity_action: Mapped[str] = mapped_column(Text)
    diet_action: Mapped[str] = mapped_column(Text)
    referrals: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    score2_version: Mapped[str] = mapped_column(Text)
    habits_version: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    recorded_by: Mapped[str] = mapped_column(Text, comment="API client name")


class ResultEvent(Base):
    """Append-only: a result completed (first posted, or posted again after a retraction),
    amended, or retracted; when and by whom. Reimbursement is derived from these."""

    __tablename__ = "result_events"
    __table_args__ = (
        CheckConstraint("kind IN (" + ", ".join(f"'{k}'" for k in RESULT_EVENT_KINDS) + ")", name="kind"),
        Index("ix_result_events_result_id_id", "result_id", "id"),
        Index("ix_result_events_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    result_id: Mapped[int] = mapped_column(ForeignKey("results.id", ondelete="RESTRICT"))
    kind: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, comment="The result's version after the event")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str] = mapped_column(Text)
    reason: Mapped[str | None] = mapped_column(Text)
