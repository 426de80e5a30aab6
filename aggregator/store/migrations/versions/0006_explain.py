"""Explain (issue #14): each poll's history, and what ``explain`` needs of every verdict.

A new table, ``polls`` (one row per poll of a source: what was asked, what came back, how long,
what it stored; only ever appended to, so no index beyond its key); ``decisions`` gains the
rule behind a verdict, the fields an update changed and the entry's title and link; ``items``
gains per-field digests, so that the next update can say which fields changed. Columns are
added (no table is rebuilt); on SQLite the downgrade drops them natively (SQLite >= 3.35),
as 0004 does: a batch rebuild of ``items`` is not needed to forget a column.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_DECISION_COLUMNS = (
    ("rule", sa.String(length=64)),
    ("fields", sa.Text()),
    ("title", sa.Text()),
    ("link", sa.Text()),
)


def upgrade() -> None:
    op.create_table(
        "polls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("source_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("redirects", sa.Text(), nullable=True),
        sa.Column("sent_etag", sa.Text(), nullable=True),
        sa.Column("sent_last_modified", sa.Text(), nullable=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("next_check_s", sa.Integer(), nullable=True),
        sa.Column("next_check_why", sa.Text(), nullable=True),
        sa.Column("counts", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    for name, type_ in _DECISION_COLUMNS:
        op.add_column("decisions", sa.Column(name, type_, nullable=True))
    op.add_column("items", sa.Column("field_hashes", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_table("polls")
    _drop_column("items", "field_hashes")
    for name, _ in _DECISION_COLUMNS:
        _drop_column("decisions", name)


def _drop_column(table: str, column: str) -> None:
    if op.get_bind().dialect.name == "sqlite":  # natively: no batch rebuild of the table
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    else:
        op.drop_column(table, column)
