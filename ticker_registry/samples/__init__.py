"""The durable training-sample store (SQLAlchemy, Alembic migrations).

Modules, one job each::

    store.py       SampleStore (samples: add, load, counts, specs) and SampleBatch
    batches.py     training batches (claim, finish, fail) and marking samples consumed
    leases.py      training leases (one trainer per ticker across processes)
    database.py    engine on first use, transactions, SQLite durability, error translation
    migrate.py     brings the database to the newest schema on open (Alembic, in code)
    migrations/    the Alembic revisions
    schema.py      the tables, as the newest revision leaves them
    validation.py  validate_sample: one sample checked against the feature spec, no I/O
"""

from __future__ import annotations

from .schema import SPEC_VERSION
from .store import SampleBatch, SampleStore, spec_hash
from .validation import validate_sample

__all__ = ["SPEC_VERSION", "SampleBatch", "SampleStore", "spec_hash", "validate_sample"]
