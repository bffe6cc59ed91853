"""Fixtures for the edge agent's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.edge_agent.enroll_responder import EnrollResponder


@pytest.fixture
def enroll_responder() -> Iterator[EnrollResponder]:
    """A real enrollment endpoint on a free loopback port, stopped after the test."""
    with EnrollResponder() as responder:
        yield responder
