"""Alembic migrations of the hub's database (run them with `hub.storage.migrate.migrate`)."""
