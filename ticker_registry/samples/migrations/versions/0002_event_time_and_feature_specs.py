"""Samples record their event time and feature-spec hash; specs kept in feature_specs.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

A store written between the first round and Alembic may already hold part of
this (``event_time`` came one release before ``spec_hash``, and those
releases created every table in their metadata); such stores are stamped at
0001, so each step here is taken only when its column or table is missing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    present = {c["name"] for c in inspector.get_columns("samples")}
    if "event_time" not in present:
        op.add_column("samples", sa.Column("event_time", sa.BigInteger, nullable=True))
    if "spec_hash" not in present:
        op.add_column("samples", sa.Column("spec_hash", sa.String(16), nullable=True))
    if not inspector.has_table("feature_specs"):
        op.create_table(
            "feature_specs",
            sa.Column("spec_hash", sa.String(16), primary_key=True),
            sa.Column("spec", sa.Text, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("feature_specs")
    with op.batch_alter_table("samples") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("spec_hash")
        batch.drop_column("event_time")
