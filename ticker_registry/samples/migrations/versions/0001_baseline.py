"""Baseline: the samples, training_batches and training_leases tables of the first round.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Frozen: the tables exactly as the first release created them, written out here
rather than taken from ``schema.py`` so later schema changes never alter history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_STATUSES = ("claimed", "registered", "failed")


def upgrade() -> None:
    op.create_table(
        "samples",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("ticker", sa.String(40), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("spec_version", sa.Integer, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("flow_type", sa.SmallInteger, nullable=False),
        sa.Column("impact", sa.Double, nullable=False),
        sa.Column("time_to_execution", sa.Double, nullable=False),
        sa.Column("consumed_by_version", sa.Integer, nullable=True),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_samples_ticker_id", "samples", ["ticker", "id"])
    op.create_index("ix_samples_ticker_consumed", "samples", ["ticker", "consumed_by_version"])
    op.create_table(
        "training_batches",
        sa.Column("batch_id", sa.String(32), primary_key=True),
        sa.Column("ticker", sa.String(40), nullable=False),
        sa.Column("max_sample_id", sa.BigInteger, nullable=False),
        sa.Column("n_samples", sa.Integer, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.UniqueConstraint("ticker", "idempotency_key", name="uq_training_batches_key"),
        sa.CheckConstraint(f"status IN {_STATUSES!r}", name="ck_training_batches_status"),
    )
    op.create_table(
        "training_leases",
        sa.Column("ticker", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("training_leases")
    op.drop_table("training_batches")
    op.drop_index("ix_samples_ticker_consumed", table_name="samples")
    op.drop_index("ix_samples_ticker_id", table_name="samples")
    op.drop_table("samples")
