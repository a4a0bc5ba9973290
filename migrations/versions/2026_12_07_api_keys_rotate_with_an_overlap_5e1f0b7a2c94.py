"""api keys rotate with an overlap

``halsosamtal clients rotate NAME`` issues a new key and keeps the one before valid for an
overlap period, so a client can switch without a moment of refused requests: the key before is
kept as its hash, with the time it stops working.

Revision ID: 5e1f0b7a2c94
Revises: 5b1e0c7d2a44
Create Date: 2026-12-07 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5e1f0b7a2c94"
down_revision: str | None = "5b1e0c7d2a44"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_clients",
        sa.Column(
            "previous_key_prefix",
            sa.Text(),
            nullable=True,
            comment="After a rotation: the first characters of the key before",
        ),
    )
    op.add_column(
        "api_clients",
        sa.Column(
            "previous_key_hash",
            sa.LargeBinary(),
            nullable=True,
            comment="After a rotation: SHA-256 of the key before, valid until",
        ),
    )
    op.add_column(
        "api_clients",
        sa.Column(
            "previous_key_valid_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="When the key before a rotation stops working",
        ),
    )
    op.create_unique_constraint(
        op.f("uq_api_clients_previous_key_hash"), "api_clients", ["previous_key_hash"]
    )


def downgrade() -> None:
    op.drop_constraint(op.f("uq_api_clients_previous_key_hash"), "api_clients", type_="unique")
    op.drop_column("api_clients", "previous_key_valid_until")
    op.drop_column("api_clients", "previous_key_hash")
    op.drop_column("api_clients", "previous_key_prefix")
