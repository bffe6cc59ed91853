"""The hub's database layer: one code path on PostgreSQL (scale) and SQLite (embedded).

* `hub.storage.db`: `create_engine`, `session_factory`, schema scoping.
* `hub.storage.models`: the tables; `hub.storage.migrations`: Alembic revisions,
  run with `hub.storage.migrate.migrate`.
* `hub.storage.repositories`: every SQL statement the hub runs.

See docs/hub-storage.md.
"""
