"""The bus behaviour suite (tests/hub/bus/contract.py) on both buses, Kafka for real."""

from tests.hub.bus.contract import *  # noqa: F403 - the suite is written once, run per bus
