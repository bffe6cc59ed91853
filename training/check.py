"""`outpost dataset check`: every label error of a YOLO dataset, with file and line.

    >>> report = check_dataset(load_dataset(Path("data.yaml")))  # doctest: +SKIP
    >>> report.counts()  # doctest: +SKIP
    {'class_out_of_range': 2, 'missing_label': 1}

A label line is `class cx cy w h` (normalised), or a polygon `class x1 y1 x2 y2 ...`
(at least three points), which Ultralytics turns into its bounding box.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Literal

import cv2
from pydantic import BaseModel

from training.dataset import Dataset, label_path, load_dataset

__all__ = ["CheckReport", "Problem", "check_dataset", "load_dataset"]

Kind = Literal[
    "empty_split",
    "unreadable_image",
    "missing_label",
    "orphan_label",
    "malformed_line",
    "class_out_of_range",
    "box_out_of_range",
    "zero_area_box",
    "duplicate_box",
]
KINDS: dict[str, str] = {
    "empty_split": "split without images",
    "unreadable_image": "image that cannot be decoded",
    "missing_label": "image without a label file",
    "orphan_label": "label file without an image",
    "malformed_line": "label line that is not `class cx cy w h` or a polygon",
    "class_out_of_range": "class id beyond the names in data.yaml",
    "box_out_of_range": "box reaching outside the image ([0, 1])",
    "zero_area_box": "box of zero width or height",
    "duplicate_box": "label line repeated in the same file",
}
# Exporters that round pixel boxes may overshoot the edge by a hair; Ultralytics clips that.
EDGE_TOLERANCE = 1e-3


class Problem(BaseModel):
    """One label error: its kind, the file (relative to the dataset root) and the line."""

    kind: Kind
    file: str
    line: int | None = None
    detail: str


class SplitSummary(BaseModel):
    """What one split holds."""

    images: int
    labelled: int  # images with a label file (an empty one marks a background image)
    boxes: int


class CheckReport(BaseModel):
    """The outcome of a dataset check."""

    data: str
    root: str
    names: list[str]
    splits: dict[str, SplitSummary]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Problems per kind, in `KINDS` order."""
        found: Counter[str] = Counter(problem.kind for problem in self.problems)
        return {kind: found[kind] for kind in KINDS if found[kind]}


def check_dataset(dataset: Dataset, *, decode_images: bool = True) -> CheckReport:
    """Check every image and label file of every split (each file once)."""
    problems: list[Problem] = []
    boxes: dict[Path, int] = {}
    for image in dataset.images():
        boxes[image] = _check_image(dataset, image, problems, decode=decode_images)
    summaries = {}
    for name, split in dataset.splits.items():
        if not split.images:
            sources = ", ".join(dataset.relative(s) for s in split.sources)
            problems.append(Problem(kind="empty_split", file=sources, detail=f"{name}: no images"))
        summaries[name] = SplitSummary(
            images=len(split.images),
            labelled=sum(1 for image in split.images if label_path(image).is_file()),
            boxes=sum(boxes[image] for image in split.images),
        )
    problems += _orphans(dataset)
    order = list(KINDS)
    problems.sort(key=lambda p: (order.index(p.kind), p.file, p.line or 0))
    return CheckReport(
        data=str(dataset.yaml_path),
        root=str(dataset.root),
        names=list(dataset.names),
        splits=summaries,
        problems=problems,
    )


def _check_image(dataset: Dataset, image: Path, problems: list[Problem], *, decode: bool) -> int:
    """Check one image and its label file; return its number of valid boxes."""
    if decode and cv2.imread(str(image), cv2.IMREAD_REDUCED_GRAYSCALE_8) is None:
        problems.append(
            Problem(kind="unreadable_image", file=dataset.relative(image), detail="cannot decode")
        )
    labels = label_path(image)
    if not labels.is_file():
        problems.append(
            Problem(
                kind="missing_label",
                file=dataset.relative(image),
                detail=f"expected {dataset.relative(labels)}",
            )
        )
        return 0
    found, valid = check_label_file(labels, len(dataset.names))
    for kind, line, detail in found:
        problems.append(Problem(kind=kind, file=dataset.relative(labels), line=line, detail=detail))
    return valid


def check_label_file(path: Path, classes: int) -> tuple[list[tuple[Kind, int, str]], int]:
    """The problems of one label file as `(kind, line, detail)`, and its count of good boxes."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [("malformed_line", 1, f"cannot read: {exc}")], 0
    found: list[tuple[Kind, int, str]] = []
    seen: dict[tuple[float, ...], int] = {}
    valid = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        problem = check_line(line, classes)
        if problem is None:
            values = tuple(float(v) for v in line.split())
            if values in seen:
                problem = ("duplicate_box", f"same as line {seen[values]}")
            else:
                seen[values] = number
                valid += 1
        if problem is not None:
            found.append((problem[0], number, problem[1]))
    return found, valid


def check_line(line: str, classes: int) -> tuple[Kind, str] | None:
    """What is wrong with one label line, or None.

    >>> check_line("0 0.5 0.5 0.2 0.2", 1) is None
    True
    >>> check_line("3 0.5 0.5 0.2 0.2", 2)
    ('class_out_of_range', 'class 3, but data.yaml names 2 classes (0..1)')
    >>> check_line("0 0.95 0.5 0.2 0.2", 1)
    ('box_out_of_range', 'x from 0.85 to 1.05 (outside [0, 1])')
    """
    fields = line.split()
    try:
        cls = int(fields[0])
        values = [float(v) for v in fields[1:]]
    except (ValueError, IndexError):
        return "malformed_line", f"not numbers: {line.strip()[:80]!r}"
    if cls < 0 or not all(math.isfinite(v) for v in values):
        return "malformed_line", f"negative class or non-finite value: {line.strip()[:80]!r}"
    if len(values) != 4 and (len(values) < 6 or len(values) % 2):
        return "malformed_line", f"{len(fields)} fields: expected `class cx cy w h` or a polygon"
    if cls >= classes:
        return (
            "class_out_of_range",
            f"class {cls}, but data.yaml names {classes} classes (0..{classes - 1})",
        )
    return _check_geometry(values)


def _check_geometry(values: list[float]) -> tuple[Kind, str] | None:
    if len(values) == 4:
        cx, cy, w, h = values
        spans = {"x": (cx - w / 2, cx + w / 2), "y": (cy - h / 2, cy + h / 2)}
        if w < 0 or h < 0:
            return "malformed_line", f"negative size: w={w:g} h={h:g}"
    else:
        xs, ys = values[0::2], values[1::2]
        spans = {"x": (min(xs), max(xs)), "y": (min(ys), max(ys))}
    for axis, (low, high) in spans.items():
        if low < -EDGE_TOLERANCE or high > 1 + EDGE_TOLERANCE:
            return "box_out_of_range", f"{axis} from {low:.4g} to {high:.4g} (outside [0, 1])"
    if any(high - low <= 0 for low, high in spans.values()):
        (x1, x2), (y1, y2) = spans["x"], spans["y"]
        return "zero_area_box", f"width {x2 - x1:.4g}, height {y2 - y1:.4g}"
    return None


def _orphans(dataset: Dataset) -> list[Problem]:
    """Label files in the splits' label folders that no image of any split reads."""
    expected = {label_path(image) for image in dataset.images()}
    folders = {path.parent for path in expected}
    recursive = set()
    for split in dataset.splits.values():
        for source in split.sources:
            if source.is_dir():
                mapped = label_path(source / "x.png").parent
                if mapped != source and mapped.is_dir():
                    recursive.add(mapped)
    found = {p for folder in folders if folder.is_dir() for p in folder.glob("*.txt")}
    found |= {p for folder in recursive for p in folder.rglob("*.txt")}
    return [
        Problem(kind="orphan_label", file=dataset.relative(path), detail="no image reads it")
        for path in sorted(found - expected)
    ]
