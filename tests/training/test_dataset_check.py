"""`outpost dataset check` (issue 9, item 2): each kind of label error, with file and line;
YOLO folders, Roboflow exports and image lists; exit 0 clean, 1 problems, 2 unusable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from outpost.cli import app
from tests.training.synthetic import write_shapes_dataset, write_split
from training.dataset import DatasetError, load_dataset

runner = CliRunner()


def check(target: Path, *extra: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["dataset", "check", str(target), "--json", *extra])
    assert result.exit_code in (0, 1), result.output
    return result.exit_code, json.loads(result.stdout)


def found(report: dict) -> set[tuple[str, str, int | None]]:
    return {(p["kind"], p["file"], p["line"]) for p in report["problems"]}


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return write_shapes_dataset(tmp_path / "shapes", train=6, val=3)


def test_a_clean_dataset_passes(clean: Path) -> None:
    code, report = check(clean)
    assert code == 0
    assert report["problems"] == []
    assert report["names"] == ["red_box", "green_ellipse", "blue_box"]
    assert {k: v["images"] for k, v in report["splits"].items()} == {"train": 6, "val": 3}
    assert all(v["boxes"] >= v["images"] for v in report["splits"].values())


def test_the_table_says_no_problems(clean: Path) -> None:
    result = runner.invoke(app, ["dataset", "check", str(clean.parent)])  # the folder works too
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


def test_every_kind_of_label_error_is_reported_with_file_and_line(clean: Path) -> None:
    root = clean.parent
    labels = root / "labels" / "train"
    (labels / "000.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # fine
        "7 0.5 0.5 0.2 0.2\n"  # class beyond the 3 names
        "1 0.95 0.5 0.3 0.2\n"  # reaches x = 1.1
        "\n"
        "2 0.5 0.5 0.0 0.2\n"  # zero width
        "0 0.5 0.5 0.2\n"  # four fields
        "x 0.5 0.5 0.2 0.2\n"  # not a number
        "0 0.5 0.5 0.2 0.2\n"  # repeats line 1
        "1 320 240 50 40\n"  # pixels, not normalised
    )
    (labels / "001.txt").unlink()
    (labels / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "images" / "val" / "000.png").write_bytes(b"not a png")
    code, report = check(clean)
    assert code == 1
    assert found(report) == {
        ("class_out_of_range", "labels/train/000.txt", 2),
        ("box_out_of_range", "labels/train/000.txt", 3),
        ("zero_area_box", "labels/train/000.txt", 5),
        ("malformed_line", "labels/train/000.txt", 6),
        ("malformed_line", "labels/train/000.txt", 7),
        ("duplicate_box", "labels/train/000.txt", 8),
        ("box_out_of_range", "labels/train/000.txt", 9),
        ("missing_label", "images/train/001.png", None),
        ("orphan_label", "labels/train/orphan.txt", None),
        ("unreadable_image", "images/val/000.png", None),
    }
    details = {(p["kind"], p["line"]): p["detail"] for p in report["problems"]}
    assert "class 7" in details[("class_out_of_range", 2)]
    assert "1.1" in details[("box_out_of_range", 3)]


def test_the_table_lists_problems_by_kind(clean: Path) -> None:
    (clean.parent / "labels" / "train" / "002.txt").write_text("5 0.5 0.5 0.2 0.2\n")
    result = runner.invoke(app, ["dataset", "check", str(clean)])
    assert result.exit_code == 1
    assert "class_out_of_range" in result.output
    assert "labels/train/002.txt:1" in result.output


def test_polygons_and_background_images_are_fine(clean: Path) -> None:
    labels = clean.parent / "labels" / "train"
    (labels / "000.txt").write_text("1 0.1 0.1 0.4 0.1 0.3 0.5\n")  # a triangle
    (labels / "001.txt").write_text("")  # an empty file marks a background image
    code, report = check(clean)
    assert (code, report["problems"]) == (0, [])


def write_roboflow(root: Path, *, prefix: str) -> Path:
    """A Roboflow YOLO export: train/images, valid/images, names as a list, nc."""
    rng = np.random.default_rng(3)
    for split in ("train", "valid"):
        write_split(root / "tmp", split, 3, rng)
        (root / split).mkdir(parents=True)
        (root / "tmp" / "images" / split).rename(root / split / "images")
        (root / "tmp" / "labels" / split).rename(root / split / "labels")
    data = root / "data.yaml"
    data.write_text(
        f"train: {prefix}train/images\nval: {prefix}valid/images\n\n"
        "nc: 3\nnames: ['red_box', 'green_ellipse', 'blue_box']\n\n"
        "roboflow:\n  workspace: w\n  project: p\n  version: 1\n"
    )
    return data


@pytest.mark.parametrize("prefix", ["../", ""])
def test_roboflow_exports_are_read(tmp_path: Path, prefix: str) -> None:
    data = write_roboflow(tmp_path / "export", prefix=prefix)
    (tmp_path / "export" / "valid" / "labels" / "001.txt").write_text("3 0.5 0.5 0.1 0.1\n")
    code, report = check(data)
    assert code == 1
    assert {k: v["images"] for k, v in report["splits"].items()} == {"train": 3, "val": 3}
    assert found(report) == {("class_out_of_range", "valid/labels/001.txt", 1)}


def test_a_split_may_be_a_list_of_images(clean: Path) -> None:
    root = clean.parent
    (root / "val.txt").write_text("./images/val/000.png\nimages/val/001.png\n")
    clean.write_text(clean.read_text().replace("val: images/val", "val: val.txt"))
    dataset = load_dataset(clean)
    assert [p.name for p in dataset.splits["val"].images] == ["000.png", "001.png"]
    _code, report = check(clean)
    # 002.png's label is in a folder a split reads, but no image of any split reads it.
    assert found(report) == {("orphan_label", "labels/val/002.txt", None)}


def test_the_dataset_hash_follows_the_files(clean: Path) -> None:
    first = load_dataset(clean).sha256()
    assert load_dataset(clean).sha256() == first
    label = clean.parent / "labels" / "train" / "000.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.1 0.1\n")
    edited = load_dataset(clean).sha256()
    assert edited != first
    label.rename(label.with_name("000b.txt"))
    (clean.parent / "images" / "train" / "000.png").rename(
        clean.parent / "images" / "train" / "000b.png"
    )
    assert load_dataset(clean).sha256() not in {first, edited}


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("train: images/train\nval: images/val\n", "'names' must be a non-empty"),
        ("names: [a]\nval: images/val\n", "key 'train' is missing"),
        (
            "names: [a]\ntrain: images/train\nval: nowhere\n",
            "'val' is 'nowhere', which does not exist",
        ),
        ("names: [a, b]\nnc: 3\ntrain: images/train\nval: images/val\n", "'nc' is 3"),
        ("names: {0: a, 2: b}\ntrain: images/train\nval: images/val\n", "keys must be 0..1"),
        ("names: [a\n", "not valid YAML"),
        ("- a\n", "expected a mapping"),
    ],
)
def test_an_unusable_data_yaml_exits_2_naming_file_and_key(
    clean: Path, yaml_text: str, message: str
) -> None:
    clean.write_text(yaml_text)
    result = runner.invoke(app, ["dataset", "check", str(clean)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert str(clean) in result.stderr
    with pytest.raises(DatasetError, match=r"data\.yaml"):
        load_dataset(clean)


def test_a_missing_file_or_folder_without_data_yaml_exits_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["dataset", "check", str(tmp_path / "nope.yaml")])
    empty = runner.invoke(app, ["dataset", "check", str(tmp_path)])
    assert (missing.exit_code, empty.exit_code) == (2, 2)
    assert "no such file" in missing.stderr
    assert "no data.yaml in this folder" in empty.stderr
