"""batch runs resume by lease

A batch whose worker died stayed 'running' forever. The run now renews a lease on its row; the
worker's reconciler takes over a batch whose lease ran out (a new arq job, counted in
``resumes``) or, for a command-line run (``inline``), ends it as failed with the reason.

Revision ID: 5b1e0c7d2a44
Revises: 5b1e0c7a9d42
Create Date: 2026-12-07 14:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5b1e0c7d2a44"
down_revision: str | None = "5b1e0c7a9d42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "batch_runs",
        sa.Column(
            "inline",
            sa.Boolean(),
            server_default="false",
            nullable=False,
            comment="Run by the command that asked (the CLI), never by the worker",
        ),
    )
    op.add_column(
        "batch_runs",
        sa.Column(
            "lease_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="Whoever runs it renews this while alive; past it, the worker resumes the batch "
            "(or, inline, ends it as failed)",
        ),
    )
    op.add_column(
        "batch_runs",
        sa.Column(
            "resumes",
            sa.Integer(),
            server_default="0",
            nullable=False,
            comment="Times the worker took it over from a run that stopped; also its arq job's generation",
        ),
    )
    # A command-line run recorded before this revision is 'running' from its start.
    op.execute("UPDATE batch_runs SET inline = true WHERE state = 'running' AND requested_by = 'cli'")


def downgrade() -> None:
    op.drop_column("batch_runs", "resumes")
    op.drop_column("batch_runs", "lease_until")
    op.drop_column("batch_runs", "inline")
