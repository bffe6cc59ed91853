"""The hub's repositories: all of its SQL, behind functions with keyword-only arguments.

Each function takes an `AsyncSession` and runs in the caller's transaction (the
service commits); database errors leave as `hub.storage.errors.StorageError`.
"""

from hub.storage.repositories.alerts import AlertFilter, AlertRecord, RuleRecord
from hub.storage.repositories.credentials import (
    CredentialView,
    active_password_hash,
    issue_credentials,
    list_credentials,
    new_password,
    password_matches,
    revoke_credentials,
)
from hub.storage.repositories.deadletters import store_deadletter
from hub.storage.repositories.envelopes import StoreResult, TableCounts, store_envelopes
from hub.storage.repositories.marks import WILL_STREAM, advance_marks, current_marks
from hub.storage.repositories.queries import Sample, StatusView, latest_status, telemetry_range
from hub.storage.repositories.retention import RetentionResult, enforce_retention
from hub.storage.repositories.rollups import Rollup, rollup_telemetry

__all__ = [
    "WILL_STREAM",
    "AlertFilter",
    "AlertRecord",
    "CredentialView",
    "RetentionResult",
    "Rollup",
    "RuleRecord",
    "Sample",
    "StatusView",
    "StoreResult",
    "TableCounts",
    "active_password_hash",
    "advance_marks",
    "current_marks",
    "enforce_retention",
    "issue_credentials",
    "latest_status",
    "list_credentials",
    "new_password",
    "password_matches",
    "revoke_credentials",
    "rollup_telemetry",
    "store_deadletter",
    "store_envelopes",
    "telemetry_range",
]
