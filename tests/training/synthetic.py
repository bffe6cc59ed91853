"""Small generated YOLO datasets for the training tests (the shapes of tests/edge_agent)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from tests.edge_agent.ultralytics_model import CLASSES, IMGSZ, draw_scene


def write_split(root: Path, split: str, count: int, rng: np.random.Generator) -> None:
    """`count` scenes as images/<split>/NNN.png with labels/<split>/NNN.txt."""
    image_dir, label_dir = root / "images" / split, root / "labels" / split
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(count):
        image, labels = draw_scene(rng, IMGSZ, IMGSZ, shapes=int(rng.integers(1, 4)))
        cv2.imwrite(str(image_dir / f"{i:03d}.png"), image)
        lines = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in labels]
        (label_dir / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")


def write_shapes_dataset(root: Path, *, train: int = 48, val: int = 12, seed: int = 0) -> Path:
    """A clean YOLO dataset with train and val splits; returns its data.yaml."""
    rng = np.random.default_rng(seed)
    write_split(root, "train", train, rng)
    write_split(root, "val", val, rng)
    names = "".join(f"  {i}: {name}\n" for i, name in enumerate(CLASSES))
    data = root / "data.yaml"
    data.write_text(f"path: .\ntrain: images/train\nval: images/val\nnames:\n{names}")
    return data
