"""The hub's repositories: all of its SQL, behind functions with keyword-only arguments.

Each function takes an `AsyncSession` and runs in the caller's transaction (the
service commits); database errors leave as `hub.storage.errors.StorageError`.
"""

from hub.storage.repositories.deadletters import store_deadletter
from hub.storage.repositories.envelopes import StoreResult, TableCounts, store_envelopes
from hub.storage.repositories.marks import WILL_STREAM, advance_marks, current_marks
from hub.storage.repositories.queries import Sample, StatusView, latest_status, telemetry_range
from hub.storage.repositories.retention import RetentionResult, enforce_retention
from hub.storage.repositories.rollups import Rollup, rollup_telemetry

__all__ = [
    "WILL_STREAM",
    "RetentionResult",
    "Rollup",
    "Sample",
    "StatusView",
    "StoreResult",
    "TableCounts",
    "advance_marks",
    "current_marks",
    "enforce_retention",
    "latest_status",
    "rollup_telemetry",
    "store_deadletter",
    "store_envelopes",
    "telemetry_range",
]
