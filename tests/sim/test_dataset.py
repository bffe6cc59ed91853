"""`outpost sim dataset`: a YOLO dataset with progress, that ultralytics trains on unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from outpost.cli import app
from sim.dataset import generate_dataset, split_counts
from sim.render import CLASSES

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["sim", "dataset", *args])


def test_the_command_shows_progress_and_writes_the_yolo_layout(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    result = invoke("--out", str(out), "--images", "10", "--imgsz", "96", "--val", "0.3")
    assert result.exit_code == 0, result.output
    assert "rendering" in result.output
    assert "10/10" in result.output
    assert "wrote 7 train + 3 val images" in result.output
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "names": dict(enumerate(CLASSES)),
    }
    for split, count in (("train", 7), ("val", 3)):
        images = sorted(p.stem for p in (out / "images" / split).glob("*.jpg"))
        labels = sorted(p.stem for p in (out / "labels" / split).glob("*.txt"))
        assert len(images) == count
        assert images == labels


def test_labels_are_normalised_boxes_of_known_classes(tmp_path: Path) -> None:
    summary = generate_dataset(tmp_path / "ds", images=12, imgsz=128, seed=3)
    lines = [
        line.split()
        for path in (tmp_path / "ds" / "labels").rglob("*.txt")
        for line in path.read_text().splitlines()
    ]
    assert len(lines) == sum(summary.boxes.values()) > 0
    for cls, *box in lines:
        assert int(cls) in range(len(CLASSES))
        cx, cy, w, h = map(float, box)
        assert 0.0 < w <= 1.0
        assert 0.0 < h <= 1.0
        assert -1e-6 <= cx - w / 2 <= cx + w / 2 <= 1.0 + 1e-6
        assert -1e-6 <= cy - h / 2 <= cy + h / 2 <= 1.0 + 1e-6
    assert all(summary.boxes[c] > 0 for c in CLASSES)  # every class is represented


def test_a_seed_gives_the_same_dataset(tmp_path: Path) -> None:
    for name in ("a", "b"):
        generate_dataset(tmp_path / name, images=3, imgsz=96, seed=9)
    for path in (tmp_path / "a").rglob("*.*"):
        if path.suffix in (".jpg", ".txt"):
            assert (
                path.read_bytes()
                == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
            )


def test_an_out_that_is_a_file_is_refused_with_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = invoke("--out", str(target), "--images", "2")
    assert result.exit_code == 2
    assert "not a folder" in result.output


def test_a_non_empty_out_needs_force_and_force_replaces_the_dataset(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    assert invoke("--out", str(out), "--images", "4", "--imgsz", "64").exit_code == 0
    refused = invoke("--out", str(out), "--images", "2", "--imgsz", "64")
    assert refused.exit_code == 2
    assert "--force" in refused.output
    (out / "notes.md").write_text("keep me")
    forced = invoke("--out", str(out), "--images", "2", "--imgsz", "64", "--force")
    assert forced.exit_code == 0, forced.output
    assert len(list((out / "images").rglob("*.jpg"))) == 2
    assert (out / "notes.md").read_text() == "keep me"


def test_a_bad_scenario_file_is_exit_2_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nsite: {width_m: -1, height_m: 5}\n")
    result = invoke("--out", str(tmp_path / "ds"), "--images", "2", "--scenario", str(bad))
    assert result.exit_code == 2
    assert "site.width_m" in result.output


@pytest.mark.parametrize(("images", "val", "expected"), [(10, 0.2, (8, 2)), (2, 0.1, (1, 1))])
def test_split_counts(images: int, val: float, expected: tuple[int, int]) -> None:
    assert split_counts(images, val) == expected


def test_ultralytics_trains_on_the_dataset_unchanged(tmp_path: Path) -> None:
    # ultralytics is imported offline and quiet by the project's helper, before anything else
    from tests.edge_agent.ultralytics_model import import_ultralytics

    yolo = import_ultralytics(tmp_path / "ultralytics-settings").YOLO
    summary = generate_dataset(tmp_path / "ds", images=40, imgsz=160, seed=0)
    model = yolo("yolov8n.yaml", task="detect")
    model.train(
        data=str(summary.data_yaml),
        epochs=1,
        imgsz=160,
        batch=8,
        workers=0,
        device="cpu",
        amp=False,  # the AMP check downloads weights
        plots=False,  # plots download a font
        project=str(tmp_path / "runs"),
        name="train",
        exist_ok=True,
        seed=0,
        verbose=False,
    )
    weights = tmp_path / "runs" / "train" / "weights" / "last.pt"
    assert weights.is_file()
    metrics = model.trainer.metrics  # validation ran on images/val and read every label
    assert "metrics/mAP50(B)" in metrics
    assert model.trainer.validator.seen == summary.val
