"""Alerts on the real PostgreSQL (scale mode): the SQLite tests of the lifecycle, dedupe,
scope, filters, pages, rules and channels, run again on a freshly migrated schema."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate, schema_drift
from tests.hub.alerts.rig import AlertRig, alert_rig
from tests.hub.alerts.test_api import (
    test_channels_are_admin_only_and_never_return_the_secret,
    test_filters_and_cursor_pages,
    test_lists_show_only_alerts_of_the_callers_sites,
    test_only_operators_acknowledge_and_resolve,
    test_rules_are_read_by_viewers_and_written_by_admins,
)
from tests.hub.alerts.test_lifecycle import (
    test_a_cleared_condition_resolves_its_alert,
    test_a_device_silent_too_long_raises_offline_and_its_return_resolves,
    test_acknowledged_alerts_still_dedupe_and_resolved_ones_do_not,
    test_every_change_is_published_with_device_and_site,
    test_one_open_alert_per_rule_and_device,
)
from tests.integration.hub.storage.schemas import drop_schema

__all__ = [
    "test_a_cleared_condition_resolves_its_alert",
    "test_a_device_silent_too_long_raises_offline_and_its_return_resolves",
    "test_acknowledged_alerts_still_dedupe_and_resolved_ones_do_not",
    "test_channels_are_admin_only_and_never_return_the_secret",
    "test_every_change_is_published_with_device_and_site",
    "test_filters_and_cursor_pages",
    "test_lists_show_only_alerts_of_the_callers_sites",
    "test_one_open_alert_per_rule_and_device",
    "test_only_operators_acknowledge_and_resolve",
    "test_rules_are_read_by_viewers_and_written_by_admins",
]

_counter = itertools.count()


@pytest.fixture
async def rig(pg_dsn: str, run_id: str, tmp_path: Path) -> AsyncIterator[AlertRig]:
    """The alert rig on a freshly migrated schema of this test's own."""
    schema = f"hub_alerts_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with alert_rig(engine, tmp_path / "data") as running:
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)


async def test_the_alert_tables_match_their_models(rig: AlertRig) -> None:
    drift = await schema_drift(rig.hub.engine)
    ours = [d for d in drift if "alert" in repr(d)]
    assert ours == []
