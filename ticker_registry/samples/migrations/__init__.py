"""Alembic migrations of the sample store, run in code by :mod:`ticker_registry.samples.migrate`.

This folder is a package so that it ships in the wheel with ``env.py`` and
``versions/``; Alembic itself loads the files by path. To write a new revision::

    alembic -c ticker_registry/samples/migrations/alembic.ini revision --rev-id 0003 -m "..."

then set :data:`ticker_registry.samples.migrate.HEAD` to its id (a test checks it).
"""
