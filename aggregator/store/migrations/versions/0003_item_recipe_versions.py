"""Store the version of each item's key and content-hash recipes; existing rows are version 1.

A recipe change is then a silent re-hash or a re-key (``aggregator.store.rekey``), not a wave
of false updates or of duplicates (issue #10). Downgrading forgets the versions: it is only
safe while every row is still version 1.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("key_version", sa.Integer(), server_default="1", nullable=False)
        )
        batch_op.add_column(
            sa.Column("hash_version", sa.Integer(), server_default="1", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_column("hash_version")
        batch_op.drop_column("key_version")
