"""`outpost train` end to end on CPU (issue 9, acceptance): a tiny YOLOv8 trained from its
yaml on a generated dataset, evaluated, exported to ONNX with its card; the agent's
detector loads the export and finds what ultralytics' predictor finds on the same images."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import ModuleType

import cv2
import numpy as np
import onnx
import pytest
from typer.testing import CliRunner

from edge_agent.perception.detector import Detector, DetectorOptions
from edge_agent.perception.drift import DriftStats, Layout
from outpost.cli import app
from protocol.models import ModelManifest
from tests.edge_agent.test_detector_parity import (
    Found,
    match,
    predict_with_detector,
    predict_with_ultralytics,
)
from tests.edge_agent.ultralytics_model import BATCH, CLASSES, EPOCHS, IMGSZ, scene_images
from tests.training.synthetic import write_shapes_dataset
from training.card import ModelCard
from training.dataset import file_sha256, load_dataset
from training.ultralytics_env import import_ultralytics

CONF = 0.25  # the agent's default threshold
# What makes a from-scratch YOLOv8n learn the shapes in seconds (see ultralytics_model.py).
FAST = ["nbs=2", "optimizer=AdamW", "lr0=0.002", "warmup_epochs=0", "mosaic=0", "close_mosaic=0"]
FAST += ["val=false", "save=false"]


@pytest.fixture(scope="module")
def ultralytics(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return import_ultralytics(tmp_path_factory.mktemp("ultralytics-settings"))


@pytest.fixture(scope="module")
def trained(ultralytics: ModuleType, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("train-e2e")
    data = write_shapes_dataset(root / "shapes", train=48, val=12)
    out = root / "out"
    args = ["train", "--data", str(data), "--out", str(out), "--version", "1"]
    args += ["--epochs", str(EPOCHS), "--imgsz", str(IMGSZ), "--batch", str(BATCH)]
    args += ["--device", "cpu", *(a for pair in FAST for a in ("--arg", pair))]
    started = datetime.now(UTC)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return data, out, result, started


def test_outputs_and_summary(trained) -> None:
    _, out, result, _ = trained
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "card.json", "best.pt"}
    assert f"model: {out / 'model.onnx'}" in result.stdout
    assert f"card: {out / 'card.json'}" in result.stdout
    assert "mAP50" in result.stdout
    assert "epoch 6/6" in result.stderr  # the progress bar ran to the end


def test_the_card_describes_the_run(trained) -> None:
    data, out, _, started = trained
    card = ModelCard.model_validate_json((out / "card.json").read_text())
    raw = json.loads((out / "card.json").read_text())
    assert raw["schema"] == "outpost.model-card/1"
    assert (card.name, card.version, card.classes) == ("shapes", "1", list(CLASSES))
    assert card.input_size == (IMGSZ, IMGSZ)
    assert started <= card.created_at <= datetime.now(UTC)
    # Evaluation on val: the model learned something, and every class is reported.
    assert 0.05 < card.metrics.map50 <= 1.0
    assert 0.0 < card.metrics.map50_95 <= card.metrics.map50
    assert list(card.metrics.per_class_ap) == list(CLASSES)
    instances = sum(c.instances for c in card.metrics.per_class_ap.values())
    assert instances == card.dataset.splits["val"].boxes
    # The dataset, hashed as load_dataset hashes it.
    assert card.dataset.sha256 == load_dataset(data).sha256()
    assert card.dataset.splits["train"].images == 48
    assert card.dataset.splits["val"].images == 12
    # How it was trained.
    training = card.training
    assert (training.device, training.epochs) == ("cpu", EPOCHS)
    assert (training.model, training.model_sha256) == ("yolov8n.yaml", None)  # packaged
    assert 0 < training.duration_s < (datetime.now(UTC) - started).total_seconds()
    assert training.args["imgsz"] == IMGSZ
    assert training.args["optimizer"] == "AdamW"
    assert training.ultralytics_version
    assert training.torch_version
    # The file it describes.
    assert card.onnx.sha256 == file_sha256(out / "model.onnx")
    assert card.onnx.size == (out / "model.onnx").stat().st_size
    assert card.onnx.opset >= 12


def test_the_baseline_has_the_agents_shape(trained) -> None:
    _, out, _, _ = trained
    card = ModelCard.model_validate_json((out / "card.json").read_text())
    agent = DriftStats(Layout(tuple(CLASSES))).histograms()
    assert {k: len(v) for k, v in card.baseline.items()} == {k: len(v) for k, v in agent.items()}
    assert all(sum(h) == pytest.approx(1.0) for h in card.baseline.values())
    assert card.baseline_info.images == 12
    assert card.baseline_info.conf == CONF
    # The hub copies it into the signed manifest agents receive.
    manifest = ModelManifest(
        name=card.name,
        version=card.version,
        sha256=card.onnx.sha256,
        size=card.onnx.size,
        url="/models/x",
        input_size=card.input_size,
        classes=card.classes,
        baseline=card.baseline,
        created_at=card.created_at,
    )
    assert manifest.baseline == card.baseline


def test_the_onnx_metadata_names_the_model(trained) -> None:
    _, out, _, _ = trained
    metadata = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert (metadata["name"], metadata["version"]) == ("shapes", "1")
    assert metadata["ultralytics_version"]
    info = Detector(out / "model.onnx", DetectorOptions()).info
    assert info.classes == CLASSES
    assert info.input_size == (IMGSZ, IMGSZ)


def assert_agree(ours: list[list[Found]], theirs: list[list[Found]], conf_tol: float) -> int:
    """Same boxes (IoU >= 0.9, same class, close confidence); a box may only be missing
    on one side when its confidence is near the threshold. Returns the matched count."""
    matched = 0
    for index, (mine, reference) in enumerate(zip(ours, theirs, strict=True)):
        pairs, left_ours, left_theirs = match(mine, reference)
        for a, b in pairs:
            assert a.conf == pytest.approx(b.conf, abs=conf_tol), f"image {index}: {a} vs {b}"
        for missing in left_ours + left_theirs:
            assert missing.conf - CONF < conf_tol, f"image {index}: only one side found {missing}"
        matched += len(pairs)
    return matched


def test_the_agent_finds_what_ultralytics_finds_with_the_export(trained, ultralytics) -> None:
    data, out, _, _ = trained
    frames = scene_images()  # several sizes and aspect ratios, and the val images
    frames += [cv2.imread(str(p)) for p in load_dataset(data).splits["val"].images]
    theirs = predict_with_ultralytics(ultralytics, out / "model.onnx", frames, CONF)
    ours = predict_with_detector(Detector(out / "model.onnx", DetectorOptions(conf=CONF)), frames)
    assert assert_agree(ours, theirs, 1e-4) >= 5


def test_the_agent_finds_what_the_trained_weights_find(trained, ultralytics) -> None:
    data, out, _, _ = trained
    images = load_dataset(data).splits["val"].images
    frames = [cv2.imread(str(p)) for p in images]
    assert all(isinstance(f, np.ndarray) for f in frames)
    theirs = predict_with_ultralytics(ultralytics, out / "best.pt", frames, CONF)
    ours = predict_with_detector(Detector(out / "model.onnx", DetectorOptions(conf=CONF)), frames)
    assert assert_agree(ours, theirs, 1e-2) >= 5
