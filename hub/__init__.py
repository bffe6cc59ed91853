"""The Outpost hub: ingest, bus, storage, alerts, control, registry, auth, audit, API."""

__version__ = "0.1.0"
