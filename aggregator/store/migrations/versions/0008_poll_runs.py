"""A run of repeated 304s is one row of ``polls``, not one row per poll (issue #16).

A repeat (a 304 that sent and got back the validators of the poll before, at the same URL: most
polls of a warm tick) no longer writes a row of its own: the source's row counts the run
(``sources.repeat_polls``, ``sources.repeat_first_at``; its end is ``last_poll_at``), and the
next poll that is not a repeat first writes the run as one row (``polls.repeats``: the polls it
stands for beyond the first, ``polls.last_at``: the last of them). A warm tick writes no history
row at all, and the table no longer grows with the number of polls of unchanged feeds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "sources", sa.Column("repeat_polls", sa.Integer(), nullable=False, server_default="0")
    )
    op.add_column("sources", sa.Column("repeat_first_at", sa.DateTime(), nullable=True))
    op.add_column("polls", sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("polls", sa.Column("last_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    op.drop_column("polls", "last_at")
    op.drop_column("polls", "repeats")
    op.drop_column("sources", "repeat_first_at")
    op.drop_column("sources", "repeat_polls")
