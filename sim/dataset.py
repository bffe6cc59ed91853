"""YOLO datasets rendered by the simulator, ready for `ultralytics` as they are.

Layout under the output folder:

    data.yaml            path (absolute), train, val, names {0: person, 1: forklift, 2: robot}
    images/train/000000.jpg ...     images/val/...
    labels/train/000000.txt ...     labels/val/...   one `class cx cy w h` line per box (0..1)

Every image is its own scene: a camera placed at random on the scenario's free floor
(as a site camera up high or a robot's camera low down), people, forklifts and robots
placed at random in front of it, and strong domain randomisation (light, colour,
noise, blur, floor texture, clothes and paint). Image `i` depends only on the seed
and `i`, so a dataset is reproducible.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     summary = generate_dataset(Path(tmp) / "ds", images=4, imgsz=96, seed=1)
    ...     print(summary.train, summary.val, summary.data_yaml.is_file())
    3 1 True
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import yaml

from sim.errors import DatasetError
from sim.render import (
    CLASSES,
    CameraPose,
    GroundTruth,
    Optics,
    Randomisation,
    Scenery,
    View,
    Visibility,
    render_view,
    yolo_labels,
)
from sim.scenario import Scenario, default_scenario
from sim.world import BODY_RADIUS_M, Body, BodyClass

MAX_BODIES = {"person": 6, "forklift": 2, "robot": 3}
ROBOT_RADIUS_M = 0.35
JPEG_QUALITY = 90
LABEL_ALL = Visibility()
MIN_BOX_PX = LABEL_ALL.min_side
"""Default smallest labelled box side: every object the renderer would label."""


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    """What `generate_dataset` wrote."""

    out: Path
    data_yaml: Path
    train: int
    val: int
    boxes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        """Images rendered and written per second."""
        return (self.train + self.val) / self.seconds if self.seconds > 0 else 0.0


def check_out(out: Path, *, force: bool) -> None:
    """`DatasetError` unless `out` can take a dataset: absent, an empty folder, or `force`."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and not force and any(out.iterdir()):
        raise DatasetError(f"{out}: folder is not empty; pass --force to replace a dataset")


def prepare_out(out: Path, *, force: bool) -> None:
    """Check the output folder can take a dataset; with `force`, clear a previous one in it.

    Only `images/`, `labels/` and `data.yaml` are removed; nothing else in the folder is.
    """
    check_out(out, force=force)
    if force:
        for name in ("images", "labels"):
            shutil.rmtree(out / name, ignore_errors=True)
        (out / "data.yaml").unlink(missing_ok=True)
    try:
        for split in ("train", "val"):
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
            (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"{out}: cannot create the dataset folders: {exc}") from exc


def split_counts(images: int, val_fraction: float) -> tuple[int, int]:
    """(train, val) image counts: at least one of each when there are two images or more.

    Example:
        >>> split_counts(10, 0.2), split_counts(1, 0.2), split_counts(5, 0.0)
        ((8, 2), (1, 0), (5, 0))
    """
    if images < 1 or not 0.0 <= val_fraction < 1.0:
        raise ValueError("need images >= 1 and 0 <= val_fraction < 1")
    val = round(images * val_fraction)
    if val_fraction > 0.0 and images >= 2:
        val = min(images - 1, max(1, val))
    return images - val, val


def generate_dataset(
    out: Path,
    images: int,
    *,
    val_fraction: float = 0.2,
    imgsz: int = 320,
    seed: int = 0,
    min_box: int = MIN_BOX_PX,
    scenario: Scenario | None = None,
    force: bool = False,
    on_image: Callable[[int], None] | None = None,
) -> DatasetSummary:
    """Render `images` labelled images (width `imgsz`, 4:3) into a YOLO dataset at `out`.

    Objects showing less than `min_box` pixels across (after occlusion and the image's
    edges) are left unlabelled: too far away to act on at this resolution.
    `on_image(i)` is called after each image is written (for progress bars).
    """
    train, val = split_counts(images, val_fraction)
    prepare_out(out, force=force)
    scenario = scenario or default_scenario()
    randomisation = Randomisation.strong()
    scenery = Scenery(scenario, textures=randomisation.textures, seed=seed)
    optics_h = max(16, (imgsz * 3 // 4) // 2 * 2)
    visibility = Visibility(min_side=min_box)
    counts = dict.fromkeys(CLASSES, 0)
    started = time.perf_counter()
    for i in range(images):
        rng = np.random.default_rng([seed, i])
        image, boxes = render_sample(
            scenario, scenery, rng, randomisation, imgsz, optics_h, visibility
        )
        split = "train" if i < train else "val"
        _write(out, split, f"{i:06d}", image, boxes)
        for box in boxes:
            counts[box.cls] += 1
        if on_image is not None:
            on_image(i)
    data_yaml = out / "data.yaml"
    data = {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val" if val else "images/train",
        "names": dict(enumerate(CLASSES)),
    }
    data_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    seconds = time.perf_counter() - started
    return DatasetSummary(out, data_yaml, train, val, counts, seconds)


def _write(out: Path, split: str, stem: str, image: np.ndarray, boxes: list[GroundTruth]) -> None:
    height, width = image.shape[:2]
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - encoding a BGR uint8 image does not fail
        raise DatasetError(f"JPEG encoding failed for image {stem}")
    try:
        (out / "images" / split / f"{stem}.jpg").write_bytes(jpeg.tobytes())
        lines = yolo_labels(boxes, width, height)
        text = "\n".join(lines) + "\n" if lines else ""
        (out / "labels" / split / f"{stem}.txt").write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{out}: cannot write image {stem}: {exc}") from exc


def render_sample(
    scenario: Scenario,
    scenery: Scenery,
    rng: np.random.Generator,
    randomisation: Randomisation,
    width: int,
    height: int,
    visibility: Visibility = LABEL_ALL,
) -> tuple[np.ndarray, list[GroundTruth]]:
    """One random scene: a camera somewhere on the floor and bodies in front of it."""
    high = rng.random() < 0.4
    fov = float(rng.uniform(55.0, 90.0) if high else rng.uniform(65.0, 100.0))
    x, y = _free_point(scenario, rng, margin=0.5)
    pose = CameraPose(
        x,
        y,
        float(rng.uniform(2.5, 6.0) if high else rng.uniform(0.5, 1.4)),
        _open_heading(scenario, rng, x, y),
        float(rng.uniform(0.3, 0.8) if high else rng.uniform(-0.05, 0.25)),
    )
    bodies = _place_bodies(scenario, rng, pose, fov)
    view = View(pose, Optics(width, height, fov))
    image, boxes, _ = render_view(scenery, view, bodies, rng, randomisation, visibility=visibility)
    return image, boxes


def _free_point(scenario: Scenario, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    site = scenario.site
    for _ in range(200):
        x = float(rng.uniform(margin, site.width_m - margin))
        y = float(rng.uniform(margin, site.height_m - margin))
        if not any(s.contains(x, y, margin) for s in scenario.shelves):
            return x, y
    return site.width_m / 2, site.height_m / 2  # a site full of shelves: take the middle


def _open_heading(scenario: Scenario, rng: np.random.Generator, x: float, y: float) -> float:
    """A random heading with a few metres of free floor ahead (not staring at a shelf or wall)."""
    site = scenario.site
    heading = float(rng.uniform(-math.pi, math.pi))
    for _ in range(12):
        ahead = [(x + d * math.cos(heading), y + d * math.sin(heading)) for d in (1.0, 2.0, 4.0)]
        on_site = all(0 < px < site.width_m and 0 < py < site.height_m for px, py in ahead)
        if on_site and not any(s.contains(px, py) for s in scenario.shelves for px, py in ahead):
            break
        heading = float(rng.uniform(-math.pi, math.pi))
    return heading


def _place_bodies(
    scenario: Scenario, rng: np.random.Generator, pose: CameraPose, fov_deg: float
) -> list[Body]:
    """People, forklifts and robots at random on free floor in the camera's field of view."""
    site = scenario.site
    half = math.radians(fov_deg) / 2.0 + 0.15
    near = 2.0 + 0.5 * pose.z  # nearer, a body fills the frame
    bodies: list[Body] = []
    classes: list[BodyClass] = ["person", "forklift", "robot"]
    for cls in classes:
        for _ in range(int(rng.integers(0, MAX_BODIES[cls] + 1))):
            radius = BODY_RADIUS_M.get(cls, ROBOT_RADIUS_M)
            for _attempt in range(20):
                dist = near + (18.0 - near) * float(rng.random()) ** 1.5
                bearing = pose.heading + float(rng.uniform(-half, half))
                x, y = pose.x + dist * math.cos(bearing), pose.y + dist * math.sin(bearing)
                if not (
                    radius <= x <= site.width_m - radius and radius <= y <= site.height_m - radius
                ):
                    continue
                if any(s.contains(x, y, radius * 0.8) for s in scenario.shelves):
                    continue
                if any(math.hypot(b.x - x, b.y - y) < b.radius_m + radius for b in bodies):
                    continue
                heading = float(rng.uniform(-math.pi, math.pi))
                look = int(rng.integers(1 << 30))
                bodies.append(Body(f"{cls}-{len(bodies)}", cls, x, y, heading, look, radius))
                break
    return bodies
