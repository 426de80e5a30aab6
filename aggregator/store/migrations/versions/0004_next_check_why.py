"""Keep what decided each source's next check (interval, cache, ttl, backoff, retry-after ...).

``aggregator once --force`` never polls a source that is waiting out a Retry-After, and the
``sources`` views say why a source is polled when it is (issue #11).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sources", schema=None) as batch_op:
        batch_op.add_column(sa.Column("next_check_why", sa.Text(), nullable=True))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Natively (SQLite >= 3.35): a batch rebuild would drop ``sources``, which entries and
        # items reference, and foreign keys are on.
        op.execute("ALTER TABLE sources DROP COLUMN next_check_why")
    else:
        op.drop_column("sources", "next_check_why")
