"""Fixtures every test package may use."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_yolo_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A YOLOv8n ONNX export, trained for seconds on generated shapes (needs ultralytics)."""
    # ultralytics (the `train` extra, which `make setup` installs) is imported by the helper
    # first, which makes it offline and keeps its settings out of the home directory.
    from tests.edge_agent.ultralytics_model import build_tiny_yolo_onnx

    return build_tiny_yolo_onnx(tmp_path_factory.mktemp("tiny-yolo"))
