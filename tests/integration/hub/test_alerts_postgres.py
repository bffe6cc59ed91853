"""Alerts on the real PostgreSQL (scale mode): the SQLite tests of the lifecycle, dedupe,
scope, filters, pages, rules and channels, run again on a freshly migrated schema."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine, transaction
from hub.storage.migrate import migrate, schema_drift
from hub.storage.repositories.alerts import AlertRecord, NewAlert, raise_alert
from tests.hub.alerts.rig import AlertRig, alert_rig
from tests.hub.alerts.support import at, danger
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


async def test_two_workers_raising_one_alert_at_once_open_it_once(rig: AlertRig) -> None:
    """The second worker's insert waits for the first's commit, then repeats its alert."""
    (seed,) = await rig.feed(danger(rig.mine))
    new = NewAlert(
        rule_id=seed.rule_id,
        rule_name=seed.rule_name,
        rule_type=seed.rule_type,
        device=rig.theirs,
        site_id="plant-b",
        severity=seed.severity,
        message="a person in dock",
        detail={},
        at=at(1),
    )
    first_inserted, first_may_commit = asyncio.Event(), asyncio.Event()

    async def first() -> tuple[AlertRecord, bool]:
        async with transaction(rig.hub.sessions) as session:
            raised = await raise_alert(session, alert=new)
            first_inserted.set()
            await first_may_commit.wait()
        return raised

    async def second() -> tuple[AlertRecord, bool]:
        await first_inserted.wait()
        async with transaction(rig.hub.sessions) as session:
            return await raise_alert(session, alert=new)

    one = asyncio.create_task(first())
    two = asyncio.create_task(second())
    await first_inserted.wait()
    await asyncio.sleep(0.5)  # the second is now waiting on the first's uncommitted row
    assert not two.done()
    first_may_commit.set()
    (opened, created), (repeated, created_again) = await asyncio.wait_for(
        asyncio.gather(one, two), 10
    )
    assert (created, created_again) == (True, False)
    assert (repeated.id, repeated.count) == (opened.id, 2)
