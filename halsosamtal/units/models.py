from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base, TimestampMixin

HSA_ID_PATTERN = r"^SE[0-9]{10}-[A-Za-z0-9]{1,20}$"


class CareUnit(TimestampMixin, Base):
    """A primary-care centre, identified by its HSA-id."""

    __tablename__ = "care_units"
    __table_args__ = (
        CheckConstraint(f"hsa_id ~ '{HSA_ID_PATTERN}'", name="hsa_id_format"),
        CheckConstraint("municipality ~ '^[0-9]{4}$'", name="municipality_code"),
        CheckConstraint("operator IN ('public', 'private')", name="operator"),
        CheckConstraint("weekly_capacity >= 0", name="capacity_not_negative"),
        CheckConstraint("length(name) BETWEEN 1 AND 200", name="name_length"),
        CheckConstraint("length(visiting_address) BETWEEN 1 AND 200", name="visiting_address_length"),
        CheckConstraint("length(phone) BETWEEN 1 AND 40", name="phone_length"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    hsa_id: Mapped[str] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text)
    municipality: Mapped[str] = mapped_column(Text)
    operator: Mapped[str] = mapped_column(Text)
    participating: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    weekly_capacity: Mapped[int] = mapped_column(
        Integer,
        default=0,
        server_default="0",
        comment="Health talks the unit can hold per week",
    )
    visiting_address: Mapped[str | None] = mapped_column(
        Text, comment="Where residents come for the talk, as letters and texts show it"
    )
    phone: Mapped[str | None] = mapped_column(
        Text, comment="The number residents call, as letters and texts show it"
    )
