"""The detector Outpost ships (`models/outpost-sim-detector/`): its card is complete and
true to the file, it meets issue 9's bar on held-out simulated data, and agents load it."""

from __future__ import annotations

from edge_agent.perception.default_model import SHIPPED_MODEL, shipped_model
from edge_agent.perception.detector import Detector, DetectorOptions
from training.card import ModelCard
from training.dataset import file_sha256

CARD = SHIPPED_MODEL.parent / "card.json"


def test_the_shipped_model_is_in_the_tree_and_agents_load_it() -> None:
    assert shipped_model() == SHIPPED_MODEL, f"{SHIPPED_MODEL} is missing"
    detector = Detector(SHIPPED_MODEL, DetectorOptions())
    assert detector.info.classes == ("person", "forklift", "robot")
    assert detector.info.metadata["name"] == "outpost-sim-detector"


def test_its_card_describes_this_file_and_meets_the_bar_on_held_out_data() -> None:
    card = ModelCard.model_validate_json(CARD.read_text(encoding="utf-8"))
    assert card.name == "outpost-sim-detector"
    assert card.onnx.sha256 == file_sha256(SHIPPED_MODEL)
    assert card.onnx.size == SHIPPED_MODEL.stat().st_size < 20_000_000  # fits an edge device
    assert card.held_out is not None
    assert card.held_out.dataset.sha256 != card.dataset.sha256  # another dataset
    assert card.held_out.metrics.map50 >= 0.8
    assert card.cpu_latency
    assert {entry.threads for entry in card.cpu_latency} >= {1}
    assert card.training.device in ("cpu", "cuda:0")
    assert card.training.duration_s > 0
    assert card.baseline  # drift scoring needs it
