"""The bus behaviour suite (tests/hub/bus/contract.py) on `InMemoryBus`."""

from tests.hub.bus.contract import *  # noqa: F403 - the suite is written once, run per bus
