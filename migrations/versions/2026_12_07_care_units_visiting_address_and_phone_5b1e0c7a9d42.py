"""care units: visiting address and phone

Letters and texts to residents name the unit's visiting address and phone ("Contact us" with no
contact before); the care-units import and the API carry them. Both optional.

Revision ID: 5b1e0c7a9d42
Revises: c88ddf88dc19
Create Date: 2026-12-07 14:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7a9d42"
down_revision: str | None = "c88ddf88dc19"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "care_units",
        sa.Column(
            "visiting_address",
            sa.Text(),
            nullable=True,
            comment="Where residents come for the talk, as letters and texts show it",
        ),
    )
    op.add_column(
        "care_units",
        sa.Column(
            "phone",
            sa.Text(),
            nullable=True,
            comment="The number residents call, as letters and texts show it",
        ),
    )
    op.create_check_constraint(
        op.f("ck_care_units_visiting_address_length"),
        "care_units",
        "length(visiting_address) BETWEEN 1 AND 200",
    )
    op.create_check_constraint(
        op.f("ck_care_units_phone_length"), "care_units", "length(phone) BETWEEN 1 AND 40"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_care_units_phone_length"), "care_units", type_="check")
    op.drop_constraint(op.f("ck_care_units_visiting_address_length"), "care_units", type_="check")
    op.drop_column("care_units", "phone")
    op.drop_column("care_units", "visiting_address")
