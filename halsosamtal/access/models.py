from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, ForeignKey, LargeBinary, Text, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from halsosamtal.core.database import Base

ROLES = ("operator", "portal", "ehr")


class ApiClient(Base):
    """A system that calls the API: a portal, an EHR adapter or an operator."""

    __tablename__ = "api_clients"
    __table_args__ = (
        CheckConstraint("role IN ('operator', 'portal', 'ehr')", name="role"),
        CheckConstraint("length(name) BETWEEN 1 AND 100", name="name_length"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    role: Mapped[str] = mapped_column(Text)
    key_prefix: Mapped[str] = mapped_column(Text, comment="First characters of the key, to tell keys apart")
    key_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True, comment="SHA-256 of the key")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    previous_key_prefix: Mapped[str | None] = mapped_column(
        Text, comment="After a rotation: the first characters of the key before"
    )
    previous_key_hash: Mapped[bytes | None] = mapped_column(
        LargeBinary, unique=True, comment="After a rotation: SHA-256 of the key before, valid until"
    )
    previous_key_valid_until: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), comment="When the key before a rotation stops working"
    )

    care_units: Mapped[list[ApiClientCareUnit]] = relationship(lazy="raise", cascade="all, delete-orphan")


class ApiClientCareUnit(Base):
    """The care units an EHR client may act for."""

    __tablename__ = "api_client_care_units"

    client_id: Mapped[int] = mapped_column(ForeignKey("api_clients.id", ondelete="CASCADE"), primary_key=True)
    care_unit_id: Mapped[int] = mapped_column(
        ForeignKey("care_units.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
