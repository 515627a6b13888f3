"""Alembic environment of the sample store.

The store runs the migrations in code on the connection it passes as
``config.attributes["connection"]``, inside a transaction it has already begun
(see :mod:`ticker_registry.samples.migrate`). From the ``alembic`` command line
(``-c ticker_registry/samples/migrations/alembic.ini -x url=...``) a connection
is opened here instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from ticker_registry.samples.migrate import VERSION_TABLE
from ticker_registry.samples.schema import metadata


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata,
                      version_table=VERSION_TABLE)
    with context.begin_transaction():  # a no-op inside the store's own transaction
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("pass the store's URL: alembic -c .../alembic.ini -x url=sqlite:////abs/samples.db")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()
