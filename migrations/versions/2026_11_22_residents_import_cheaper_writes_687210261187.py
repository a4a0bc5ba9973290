"""residents import: cheaper writes (fewer indexes, checks without regex)

Revision ID: 687210261187
Revises: 99d626521244
Create Date: 2026-11-22 14:10:00.000000

What a million-row first import of the residents register spends per row, measured, went down
by dropping three indexes and by writing the format checks without the regex engine (the same
rules, at half the cost):

* ``ix_residents_care_unit_id`` and ``ix_listing_periods_care_unit_id`` only served the foreign
  keys' ON DELETE RESTRICT lookups when a care unit is deleted, which the service never does
  (care units are upserted by HSA-id); the invitation batch, the cohort and the lookups use
  ``ix_residents_birth_date_care_unit_id`` and the resident indexes (checked with EXPLAIN). Each
  cost about 1 s per million rows written. A care unit delete still checks its references,
  with a scan instead of an index probe.
* The residents checks ``^[0-9]{12}$``, ``^[0-9]{4}$``, ``^[0-9]{4}[ABC][0-9]{4}$`` and
  ``^[a-z]{2}$`` become: the right byte length, and only those ASCII characters (``ltrim`` of
  the allowed ones leaves nothing; for DeSO, ``translate`` of the digits gives one of three
  shapes). A non-ASCII character makes the byte length differ or stays after the trim, so each
  accepts exactly what its regex accepts. 3.0 s -> 1.6 s per million rows written.
* ``listing_periods`` gets the primary key (resident_id, id) instead of (id): periods are only
  ever read by resident (the history by listed_from, the open one), which the key now serves,
  so ``ix_listing_periods_resident_id_listed_from`` goes. One index fewer to write per period.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "687210261187"
down_revision: str | None = "99d626521244"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CHECKS = {
    "ck_residents_personnummer_format": (
        "personnummer ~ '^[0-9]{12}$'",
        "octet_length(personnummer) = 12 AND ltrim(personnummer, '0123456789') = ''",
    ),
    "ck_residents_municipality_code": (
        "municipality IS NULL OR municipality ~ '^[0-9]{4}$'",
        "municipality IS NULL OR (octet_length(municipality) = 4 AND ltrim(municipality, '0123456789') = '')",
    ),
    "ck_residents_deso_code": (
        "deso IS NULL OR deso ~ '^[0-9]{4}[ABC][0-9]{4}$'",
        "deso IS NULL OR (octet_length(deso) = 9 "
        "AND translate(deso, '0123456789', '0000000000') IN ('0000A0000', '0000B0000', '0000C0000'))",
    ),
    "ck_residents_language_code": (
        "language ~ '^[a-z]{2}$'",
        "octet_length(language) = 2 AND ltrim(language, 'abcdefghijklmnopqrstuvwxyz') = ''",
    ),
}


def _replace_checks(which: int) -> None:
    for name, conditions in _CHECKS.items():
        op.drop_constraint(op.f(name), "residents", type_="check")
        op.create_check_constraint(op.f(name), "residents", conditions[which])


def upgrade() -> None:
    op.drop_index(op.f("ix_residents_care_unit_id"), table_name="residents")
    op.drop_index(op.f("ix_listing_periods_care_unit_id"), table_name="listing_periods")
    op.drop_constraint(op.f("pk_listing_periods"), "listing_periods", type_="primary")
    op.create_primary_key(op.f("pk_listing_periods"), "listing_periods", ["resident_id", "id"])
    op.drop_index("ix_listing_periods_resident_id_listed_from", table_name="listing_periods")
    _replace_checks(1)


def downgrade() -> None:
    _replace_checks(0)
    op.create_index(
        "ix_listing_periods_resident_id_listed_from",
        "listing_periods",
        ["resident_id", "listed_from"],
        unique=False,
    )
    op.drop_constraint(op.f("pk_listing_periods"), "listing_periods", type_="primary")
    op.create_primary_key(op.f("pk_listing_periods"), "listing_periods", ["id"])
    op.create_index(
        op.f("ix_listing_periods_care_unit_id"), "listing_periods", ["care_unit_id"], unique=False
    )
    op.create_index(op.f("ix_residents_care_unit_id"), "residents", ["care_unit_id"], unique=False)
