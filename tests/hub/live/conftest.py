"""A served hub with two sites and a device in each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hub.auth.principal import Role
from tests.hub.assets.support import add_site, enrolled
from tests.hub.live.support import LiveHub, live_hub


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveHub]:
    """`root` (admin), `vic` (viewer of plant-a), devices `mine` (plant-a) and `theirs`."""
    async with live_hub(tmp_path) as running:
        await add_site(running.hub, "plant-a")
        await add_site(running.hub, "plant-b")
        await running.hub.add_user("vic", Role.VIEWER, ["plant-a"])
        yield running


@pytest.fixture
async def devices(live: LiveHub) -> tuple[str, str]:
    """(the plant-a device, the plant-b device)."""
    return await enrolled(live.hub, "plant-a", "AMR A"), await enrolled(
        live.hub, "plant-b", "AMR B"
    )
