"""Commands on the real PostgreSQL (scale mode): the SQLite tests of history, lifecycle,
publish failures and audit, run again on a freshly migrated schema of their own."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.storage.db import create_engine
from hub.storage.migrate import migrate
from tests.hub.auth.support import Hub, running_hub
from tests.hub.control.support import FakePublisher
from tests.hub.control.test_control import (
    test_a_publish_failure_answers_503_and_marks_the_command,
    test_acks_out_of_order_or_twice_keep_the_most_advanced_state,
    test_every_allowed_and_denied_command_has_an_audit_row,
    test_history_is_newest_first_paged_and_scoped,
)
from tests.integration.hub.storage.schemas import drop_schema

__all__ = [
    "test_a_publish_failure_answers_503_and_marks_the_command",
    "test_acks_out_of_order_or_twice_keep_the_most_advanced_state",
    "test_every_allowed_and_denied_command_has_an_audit_row",
    "test_history_is_newest_first_paged_and_scoped",
]

_counter = itertools.count()


@pytest.fixture
def publisher() -> FakePublisher:
    """What the hub publishes, and a switch to make publishing fail."""
    return FakePublisher()


@pytest.fixture
async def hub(
    pg_dsn: str, run_id: str, tmp_path: Path, publisher: FakePublisher
) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own."""
    schema = f"hub_control_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        async with running_hub(engine, tmp_path / "data", publisher=publisher) as running:
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)
