from __future__ import annotations

from datetime import date

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    PrimaryKeyConstraint,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from halsosamtal.core.database import Base, TimestampMixin


class Resident(TimestampMixin, Base):
    """A person in the population register, keyed by the normalised 12-digit personnummer."""

    __tablename__ = "residents"
    # The format checks are ^[0-9]{12}$, ^[0-9]{4}$, ^[0-9]{4}[ABC][0-9]{4}$ and ^[a-z]{2}$,
    # written without the regex engine (the right byte length, only those ASCII characters):
    # the same rules at half the cost per written row (see the migration 687210261187).
    __table_args__ = (
        CheckConstraint(
            "octet_length(personnummer) = 12 AND ltrim(personnummer, '0123456789') = ''",
            name="personnummer_format",
        ),
        CheckConstraint("sex IN ('F', 'M')", name="sex"),
        CheckConstraint(
            "municipality IS NULL OR (octet_length(municipality) = 4 "
            "AND ltrim(municipality, '0123456789') = '')",
            name="municipality_code",
        ),
        CheckConstraint(
            "deso IS NULL OR (octet_length(deso) = 9 "
            "AND translate(deso, '0123456789', '0000000000') IN ('0000A0000', '0000B0000', '0000C0000'))",
            name="deso_code",
        ),
        CheckConstraint(
            "octet_length(language) = 2 AND ltrim(language, 'abcdefghijklmnopqrstuvwxyz') = ''",
            name="language_code",
        ),
        # Also what the invitation batch reads a unit's residents by (care_unit_id with the
        # birth-date ranges): no index on care_unit_id alone, which only served the foreign
        # key's lookups when a care unit is deleted, at ~1 s per million residents written.
        Index("ix_residents_birth_date_care_unit_id", "birth_date", "care_unit_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    personnummer: Mapped[str] = mapped_column(Text, unique=True)
    birth_date: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(Text, comment="F or M, from the personnummer")
    coordination_number: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="false", comment="samordningsnummer (day + 60)"
    )
    care_unit_id: Mapped[int | None] = mapped_column(ForeignKey("care_units.id", ondelete="RESTRICT"))
    municipality: Mapped[str | None] = mapped_column(Text)
    deso: Mapped[str | None] = mapped_column(Text)
    protected_identity: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    address_line: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(Text)
    digital_mailbox: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    language: Mapped[str] = mapped_column(Text, default="sv", server_default="sv")
    deceased_on: Mapped[date | None] = mapped_column(Date)
    emigrated_on: Mapped[date | None] = mapped_column(Date)
    moved_out_on: Mapped[date | None] = mapped_column(
        Date, comment="Set when a snapshot import no longer has the resident"
    )


class ListingPeriod(Base):
    """Where a resident was listed, from a date until a date (open while current)."""

    __tablename__ = "listing_periods"
    __table_args__ = (
        # Periods are read by resident (their history, the open one): the primary key leads with
        # resident_id and serves that, so no separate index on it is written for every period.
        PrimaryKeyConstraint("resident_id", "id"),
        CheckConstraint("listed_to IS NULL OR listed_to >= listed_from", name="period_order"),
        Index(
            "uq_listing_periods_open",
            "resident_id",
            unique=True,
            postgresql_where=text("listed_to IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, autoincrement=True)
    resident_id: Mapped[int] = mapped_column(ForeignKey("residents.id", ondelete="CASCADE"))
    # No index of its own: no query reads periods by unit (the foreign key's lookup when a
    # care unit is deleted scans instead).
    care_unit_id: Mapped[int] = mapped_column(ForeignKey("care_units.id", ondelete="RESTRICT"))
    listed_from: Mapped[date] = mapped_column(Date)
    listed_to: Mapped[date | None] = mapped_column(Date, comment="Exclusive; NULL while listed")
