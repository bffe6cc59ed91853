"""The model registry and rollouts on the real PostgreSQL (scale mode): the SQLite tests of
push refusals, device downloads, canary → promotion and automatic rollback, run again on
a freshly migrated schema of their own."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.settings import RegistrySection
from hub.storage.db import create_engine
from hub.storage.migrate import migrate, schema_drift
from tests.hub.auth.support import Hub, running_hub
from tests.hub.registry.support import FakeRetainedPublisher, registry
from tests.hub.registry.test_registry_api import (
    test_a_latency_regression_on_the_canary_rolls_back,
    test_a_publish_failure_answers_503_and_names_the_devices,
    test_a_rejection_rolls_back_to_each_devices_previous_model,
    test_canary_then_promotion_then_every_device_active,
    test_only_a_device_assigned_the_model_downloads_it_with_its_credentials,
    test_push_stores_a_signed_manifest_and_refuses_what_agents_could_not_run,
)
from tests.integration.hub.storage.schemas import drop_schema

__all__ = [
    "test_a_latency_regression_on_the_canary_rolls_back",
    "test_a_publish_failure_answers_503_and_names_the_devices",
    "test_a_rejection_rolls_back_to_each_devices_previous_model",
    "test_canary_then_promotion_then_every_device_active",
    "test_only_a_device_assigned_the_model_downloads_it_with_its_credentials",
    "test_push_stores_a_signed_manifest_and_refuses_what_agents_could_not_run",
]

_counter = itertools.count()


@pytest.fixture
def publisher() -> FakeRetainedPublisher:
    """What the hub publishes retained."""
    return FakeRetainedPublisher()


@pytest.fixture
async def hub(
    pg_dsn: str, run_id: str, tmp_path: Path, publisher: FakeRetainedPublisher
) -> AsyncIterator[Hub]:
    """A hub app on a freshly migrated schema of this test's own (no drift from the models)."""
    schema = f"hub_models_{run_id}_{next(_counter)}"
    engine = create_engine(pg_dsn, schema=schema)
    try:
        await migrate(engine)
        assert await schema_drift(engine) == []
        async with running_hub(engine, tmp_path / "data", publisher=publisher) as running:
            registry(running).settings = RegistrySection(canary_health_s=0)
            yield running
    finally:
        await engine.dispose()
        await drop_schema(pg_dsn, schema)
