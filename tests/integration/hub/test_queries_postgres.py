"""Query routes on the real PostgreSQL (scale mode): the JSON filters, the keyset paging and
the rollup buckets use dialect-specific SQL, so the SQLite tests run again here."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.auth.support import Hub, running_hub
from tests.hub.queries.test_drift_api import (
    test_a_model_the_registry_does_not_know_has_no_baseline,
    test_the_newest_window_against_the_baseline,
)
from tests.hub.queries.test_frames import (
    test_paging_and_scope,
    test_snapshots_and_captures_are_kept_with_their_detections,
)
from tests.hub.queries.test_queries import (
    test_auto_downsamples_rollups_to_at_most_max_points_buckets,
    test_detections_filter_by_class_zone_model_and_time,
    test_devices_outside_the_callers_sites_answer_404,
    test_minute_rollups_and_raw_stop_at_max_points_and_say_so,
    test_pages_have_no_duplicates_or_gaps_even_as_new_events_arrive,
)
from tests.integration.hub.storage.schemas import drop_schema

__all__ = [
    "test_a_model_the_registry_does_not_know_has_no_baseline",
    "test_auto_downsamples_rollups_to_at_most_max_points_buckets",
    "test_detections_filter_by_class_zone_model_and_time",
    "test_devices_outside_the_callers_sites_answer_404",
    "test_minute_rollups_and_raw_stop_at_max_points_and_say_so",
    "test_pages_have_no_duplicates_or_gaps_even_as_new_events_arrive",
    "test_paging_and_scope",
    "test_snapshots_and_captures_are_kept_with_their_detections",
    "test_the_newest_window_against_the_baseline",
]

_counter = itertools.count()


@pytest.fixture
async def hub(pg_dsn: str, run_id: str, tmp_path: Path) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own."""
    schema = f"hub_queries_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data") as running:
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)
