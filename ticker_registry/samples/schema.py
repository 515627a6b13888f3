"""The tables of the sample store, as the newest migration leaves them.

The database is created and upgraded by the Alembic revisions in
``migrations/versions`` (see :mod:`ticker_registry.samples.migrate`), never by
``metadata.create_all``; these definitions are what the queries use, and
``tests/test_samples_migrations.py`` checks that the migrations produce exactly them.
"""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["SPEC_VERSION", "STATUSES", "batches_table", "leases_table", "metadata",
           "samples_table", "specs_table"]

#: Layout of the stored feature vector; bump when FEATURE_NAMES changes.
SPEC_VERSION = 1
#: The states of a training batch.
STATUSES = ("claimed", "registered", "failed")

metadata = sa.MetaData()
samples_table = sa.Table(
    "samples", metadata,
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
    # the trade time of the sample's event (int ns since the epoch, UTC); null only in
    # stores written before it existed, whose samples then fall back to created_at
    sa.Column("event_time", sa.BigInteger, nullable=True),
    # hash of the FeatureSpec the sample's features and labels were computed with (the spec
    # itself is in feature_specs); null for samples stored without a known spec
    sa.Column("spec_hash", sa.String(16), nullable=True),
    sa.Index("ix_samples_ticker_id", "ticker", "id"),
    sa.Index("ix_samples_ticker_consumed", "ticker", "consumed_by_version"),
    sqlite_autoincrement=True,
)
specs_table = sa.Table(
    "feature_specs", metadata,
    sa.Column("spec_hash", sa.String(16), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
)
batches_table = sa.Table(
    "training_batches", metadata,
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
    sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_training_batches_status"),
)
leases_table = sa.Table(
    "training_leases", metadata,
    sa.Column("ticker", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)
