"""Fixtures for the edge agent's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.edge_agent.enroll_responder import EnrollResponder


@pytest.fixture
def enroll_responder() -> Iterator[EnrollResponder]:
    """A real enrollment endpoint on a free loopback port, stopped after the test."""
    with EnrollResponder() as responder:
        yield responder


@pytest.fixture(scope="session")
def tiny_yolo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n ONNX export, trained for seconds on generated shapes (needs ultralytics)."""
    # ultralytics (the `train` extra, which `make setup` installs) is imported by the helper
    # first, which makes it offline and keeps its settings out of the home directory.
    from tests.edge_agent.ultralytics_model import build_tiny_yolo_onnx

    return build_tiny_yolo_onnx(tmp_path_factory.mktemp("tiny-yolo"))
