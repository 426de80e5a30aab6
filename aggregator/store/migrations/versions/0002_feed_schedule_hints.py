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
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.drop_column("skip_days")
        batch_op.drop_column("skip_hours")
        batch_op.drop_column("ttl_s")
