"""A real Ultralytics ONNX export for tests: a tiny YOLOv8 trained for a few seconds on
generated shapes, never downloaded.

Ultralytics reads its environment once, at import, so every test that needs it goes
through `training.ultralytics_env.import_ultralytics()` (re-exported here), which first
makes it offline (no DNS probe, no auto-install, no analytics) and points its settings
file at a temporary folder instead of `~/.config`.

    >>> onnx_path = build_tiny_yolo_onnx(tmp_path)  # doctest: +SKIP
    >>> YOLO = import_ultralytics().YOLO  # doctest: +SKIP
    >>> YOLO(onnx_path, task="detect").predict(scene_images(), imgsz=IMGSZ)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from training.ultralytics_env import import_ultralytics, legacy_onnx_export

__all__ = ["import_ultralytics"]  # re-exported: the tests import it from here

IMGSZ = 160
CLASSES = ("red_box", "green_ellipse", "blue_box")
TRAIN_IMAGES = 48
# About 150 optimiser steps is what it takes, from scratch, before the exported model's
# boxes follow the shapes: BatchNorm's running statistics (momentum 0.03) still carry
# their initial values after fewer, and the eval-mode export then predicts the same
# boxes for every image. Batches of 2 with `nbs` 2 (no gradient accumulation) give the
# most steps for the CPU time: 6 epochs of 24 steps, about 15 s on two cores.
EPOCHS = 6
BATCH = 2

# Shapes are drawn in one flat colour per class on a noisy grey background.
_COLOURS_BGR = ((40, 40, 220), (40, 200, 40), (220, 60, 40))


def draw_scene(
    rng: np.random.Generator, height: int, width: int, shapes: int
) -> tuple[np.ndarray, list[tuple[int, float, float, float, float]]]:
    """A BGR image with `shapes` coloured shapes, and YOLO labels `(cls, cx, cy, w, h)`."""
    image = rng.integers(90, 150, size=(height, width, 3), dtype=np.uint8)
    labels = []
    for _ in range(shapes):
        cls = int(rng.integers(len(CLASSES)))
        bw = int(rng.integers(max(8, width // 6), max(9, width // 2)))
        bh = int(rng.integers(max(8, height // 6), max(9, height // 2)))
        x1 = int(rng.integers(0, width - bw))
        y1 = int(rng.integers(0, height - bh))
        colour = _COLOURS_BGR[cls]
        if CLASSES[cls].endswith("ellipse"):
            centre = (x1 + bw // 2, y1 + bh // 2)
            cv2.ellipse(image, centre, (bw // 2, bh // 2), 0, 0, 360, colour, thickness=-1)
        else:
            cv2.rectangle(image, (x1, y1), (x1 + bw - 1, y1 + bh - 1), colour, thickness=-1)
        labels.append((cls, (x1 + bw / 2) / width, (y1 + bh / 2) / height, bw / width, bh / height))
    return image, labels


def write_dataset(root: Path, *, images: int = TRAIN_IMAGES, seed: int = 0) -> Path:
    """Write a YOLO dataset (images, txt labels, data.yaml) under `root`; return data.yaml."""
    rng = np.random.default_rng(seed)
    image_dir, label_dir = root / "images" / "train", root / "labels" / "train"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(images):
        # Shapes may overlap; that is fine, the labels stay the drawn boxes.
        image, labels = draw_scene(rng, IMGSZ, IMGSZ, shapes=int(rng.integers(1, 4)))
        cv2.imwrite(str(image_dir / f"{i:03d}.png"), image)
        lines = [f"{c} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}" for c, cx, cy, w, h in labels]
        (label_dir / f"{i:03d}.txt").write_text("\n".join(lines) + "\n")
    names = "\n".join(f"  {i}: {name}" for i, name in enumerate(CLASSES))
    data = root / "data.yaml"
    # Validation reuses the training images: the model only has to produce boxes.
    data.write_text(f"path: {root}\ntrain: images/train\nval: images/train\nnames:\n{names}\n")
    return data


def build_tiny_yolo_onnx(workdir: Path) -> Path:
    """Train a YOLOv8n-shaped model for a few epochs on CPU and export it to ONNX.

    Takes about twenty seconds on two cores; returns the `.onnx` path (input 1x3x160x160,
    output `(1, 4 + len(CLASSES), anchors)`, Ultralytics metadata).
    """
    yolo = import_ultralytics(workdir / "ultralytics-settings").YOLO
    data = write_dataset(workdir / "dataset")
    model = yolo("yolov8n.yaml", task="detect")
    model.train(
        data=str(data),
        epochs=EPOCHS,
        imgsz=IMGSZ,
        batch=BATCH,
        nbs=BATCH,
        optimizer="AdamW",
        lr0=0.002,
        warmup_epochs=0,  # a warm-up would take most of so short a run
        mosaic=0.0,  # whole shapes learn faster than mosaic crops
        close_mosaic=0,
        workers=0,
        device="cpu",
        amp=False,  # the AMP check downloads weights
        plots=False,  # plots download a font
        val=False,  # only the final epoch is validated
        save=False,  # no checkpoint per epoch; the final one is still written
        project=str(workdir / "runs"),
        name="train",
        exist_ok=True,
        seed=0,
        deterministic=True,
        verbose=False,
    )
    with legacy_onnx_export():
        exported = model.export(format="onnx", imgsz=IMGSZ, simplify=False, dynamic=False)
    return Path(exported)


# (height, width): square, wide, tall, odd padding, scaled down, scaled up, very thin.
SCENE_SIZES = (
    (160, 160),
    (120, 200),
    (240, 180),
    (97, 131),
    (480, 640),
    (50, 300),
    (333, 77),
    (161, 160),
    (64, 64),
    (720, 1280),
    (200, 120),
    (100, 161),
)


def scene_images(seed: int = 1) -> list[np.ndarray]:
    """Frames for prediction, in several sizes and aspect ratios so letterboxing matters."""
    rng = np.random.default_rng(seed)
    return [draw_scene(rng, h, w, shapes=int(rng.integers(1, 5)))[0] for h, w in SCENE_SIZES]
