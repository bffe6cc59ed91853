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
    held_out = write_shapes_dataset(root / "held-out", train=1, val=16, seed=99)
    out = root / "out"
    args = ["train", "--data", str(data), "--out", str(out), "--version", "1"]
    args += ["--holdout", str(held_out)]
    args += ["--epochs", str(EPOCHS), "--imgsz", str(IMGSZ), "--batch", str(BATCH)]
    args += ["--device", "cpu", *(a for pair in FAST for a in ("--arg", pair))]
    started = datetime.now(UTC)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return data, out, result, started, held_out


def test_outputs_and_summary(trained) -> None:
    _, out, result, _, _ = trained
    assert {p.name for p in out.iterdir()} >= {"model.onnx", "card.json", "best.pt"}
    assert f"model: {out / 'model.onnx'}" in result.stdout
    assert f"card: {out / 'card.json'}" in result.stdout
    assert "mAP50" in result.stdout
    assert "epoch 6/6" in result.stderr  # the progress bar ran to the end


def test_the_card_describes_the_run(trained) -> None:
    data, out, _, started, _ = trained
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
    _, out, _, _, _ = trained
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
    _, out, _, _, _ = trained
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
    data, out, _, _, _ = trained
    frames = scene_images()  # several sizes and aspect ratios, and the val images
    frames += [cv2.imread(str(p)) for p in load_dataset(data).splits["val"].images]
    theirs = predict_with_ultralytics(ultralytics, out / "model.onnx", frames, CONF)
    ours = predict_with_detector(Detector(out / "model.onnx", DetectorOptions(conf=CONF)), frames)
    assert assert_agree(ours, theirs, 1e-4) >= 5


def test_the_agent_finds_what_the_trained_weights_find(trained, ultralytics) -> None:
    data, out, _, _, _ = trained
    images = load_dataset(data).splits["val"].images
    frames = [cv2.imread(str(p)) for p in images]
    assert all(isinstance(f, np.ndarray) for f in frames)
    theirs = predict_with_ultralytics(ultralytics, out / "best.pt", frames, CONF)
    ours = predict_with_detector(Detector(out / "model.onnx", DetectorOptions(conf=CONF)), frames)
    assert assert_agree(ours, theirs, 1e-2) >= 5


def test_the_card_has_the_exported_files_held_out_metrics_and_cpu_latency(trained) -> None:
    _, out, result, _, held_out = trained
    card = ModelCard.model_validate_json((out / "card.json").read_text())
    assert card.held_out is not None
    assert card.cpu_latency is not None
    assert card.held_out.dataset.sha256 == load_dataset(held_out).sha256()
    assert card.held_out.dataset.splits["val"].images == 16
    metrics = card.held_out.metrics
    assert 0.05 < metrics.map50 <= 1.0
    instances = sum(c.instances for c in metrics.per_class_ap.values())
    assert instances == card.held_out.dataset.splits["val"].boxes
    threads = [entry.threads for entry in card.cpu_latency]
    assert threads[0] == 1
    assert threads == sorted(set(threads))
    for entry in card.cpu_latency:
        assert 0 < entry.p50_ms <= entry.p95_ms
        assert (entry.runs, bool(entry.cpu)) == (50, True)
    assert "held out" in result.stdout
    assert "CPU latency, 1 thread(s)" in result.stdout


def test_model_evaluate_measures_the_onnx_file_as_train_does(trained, tmp_path) -> None:
    _, out, _, _, held_out = trained
    card_path = tmp_path / "card.json"
    card_path.write_text((out / "card.json").read_text())
    args = ["model", "evaluate", "--model", str(out / "model.onnx"), "--data", str(held_out)]
    result = CliRunner().invoke(app, [*args, "--card", str(card_path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    before = ModelCard.model_validate_json((out / "card.json").read_text())
    after = ModelCard.model_validate_json(card_path.read_text())
    assert before.held_out is not None
    assert after.held_out is not None
    # The same file on the same data: the same metrics, whichever command measured them.
    assert after.held_out.metrics == before.held_out.metrics
    assert report["held_out"]["metrics"]["map50"] == before.held_out.metrics.map50
    assert (after.metrics, after.onnx) == (before.metrics, before.onnx)  # nothing else moved


def test_model_evaluate_refuses_a_dataset_with_other_classes(trained, tmp_path) -> None:
    _, out, _, _, held_out = trained
    other = tmp_path / "other.yaml"
    text = held_out.read_text().replace("path: .", f"path: {held_out.parent}")
    other.write_text(text.replace(f"{CLASSES[-1]}\n", "cat\n"))  # one class renamed
    args = ["model", "evaluate", "--model", str(out / "model.onnx"), "--data", str(other)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "differ from the model's" in result.output


def test_train_refuses_the_training_set_as_holdout_before_training(tmp_path) -> None:
    data = write_shapes_dataset(tmp_path / "shapes", train=2, val=1)
    args = ["train", "--data", str(data), "--holdout", str(data), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "is the training dataset" in result.output
    assert not (tmp_path / "o").exists()
