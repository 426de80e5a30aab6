"""Keep each feed's schedule hints (RSS ttl, skipHours, skipDays) for polls answered 304.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ttl_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("skip_hours", sa.Text(), server_default="[]", nullable=False))
        batch_op.add_column(sa.Column("skip_days", sa.Text(), server_default="[]", nullable=False))


def downgrade() -> None:
    for column in ("skip_days", "skip_hours", "ttl_s"):
        if op.get_bind().dialect.name == "sqlite":
            # Natively (SQLite >= 3.35): a batch rebuild would drop ``sources``, which entries
            # and items reference, and foreign keys are on.
            op.execute(f"ALTER TABLE sources DROP COLUMN {column}")
        else:
            op.drop_column("sources", column)
