"""Several nodes on one PostgreSQL (issue #17): host leases, each source's host, cluster state.

``hosts`` holds one row per host polled: the node that holds its lease and until when (a node
claims due hosts with ``SELECT ... FOR UPDATE SKIP LOCKED``, so one node at a time polls a
host: the per-host cap holds across the cluster). ``sources.host`` says which host a source is
leased under. ``cluster_state`` keeps the digest of the config the database was last synced
with and the content generation (``store.generation``: nodes re-render when it moves; the one
row every database uses). Otherwise unused on SQLite: ``host`` stays NULL, ``hosts`` empty.
The downgrade drops all three.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("sources", sa.Column("host", sa.Text(), nullable=True))
    # Partial: on a single node (host NULL) it stays empty and costs no poll anything.
    op.create_index("ix_sources_host_next", "sources", ["host", "next_check_at"], unique=False,
                    sqlite_where=sa.text("host IS NOT NULL"),
                    postgresql_where=sa.text("host IS NOT NULL"))  # fmt: skip
    op.create_table(
        "hosts",
        sa.Column("host", sa.Text(), nullable=False),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("host"),
    )
    op.create_table(
        "cluster_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("counter", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("node", sa.String(length=128), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("cluster_state")
    op.drop_table("hosts")
    op.drop_index("ix_sources_host_next", table_name="sources")
    if op.get_bind().dialect.name == "sqlite":
        # Natively (SQLite >= 3.35), as 0004 does: a batch rebuild would drop ``sources``,
        # which entries and items reference, and foreign keys are on.
        op.execute("ALTER TABLE sources DROP COLUMN host")
    else:
        op.drop_column("sources", "host")
