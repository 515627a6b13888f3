"""Alembic revisions of the sample store, oldest first (a package so the wheel ships them)."""
