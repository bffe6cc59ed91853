"""Drift baselines: the histograms an agent compares its live windows with.

The agent computes the same histograms per window (`edge_agent.perception.drift`); the
two packages may not import each other, so the binning is restated here and a test
holds both to the same numbers. Keys, bins and ranges:

| key               | share of | bins                                                        |
|-------------------|----------|-------------------------------------------------------------|
| `class_frac`      | objects  | one per model class, in the model's class order             |
| `conf_hist`       | objects  | 10 equal bins of confidence on [0, 1]                       |
| `boxes_hist`      | frames   | objects per frame: 0, 1, ..., 15 (or more)                  |
| `brightness_hist` | frames   | 16 equal bins, mean grey level on [0, 256)                  |
| `contrast_hist`   | frames   | 16 equal bins, grey std deviation on [0, 128)               |
| `blur_hist`       | frames   | 16 equal bins, log10(1 + Laplacian var) on [0, 4)           |

Values past the last bin count in the last bin; each histogram sums to 1, or is all
zeros when nothing was counted. Image statistics are measured on a grey copy scaled to
160 pixels wide (halvings, then area averaging).

    >>> import numpy as np
    >>> counter = BaselineCounter(BinLayout(classes=("person", "cart"), conf_bins=4))
    >>> counter.add([0], [0.9], np.full((48, 64), 100, np.uint8))
    >>> counter.add([], [], np.full((48, 64), 200, np.uint8))
    >>> hist = counter.histograms()
    >>> hist["class_frac"], hist["conf_hist"], hist["boxes_hist"][:3]
    ([1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.0])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike

Image = npt.NDArray[np.uint8]
_BRIGHTNESS_MAX, _CONTRAST_MAX, _BLUR_LOG_MAX = 256.0, 128.0, 4.0


@dataclass(frozen=True)
class BinLayout:
    """The bins of every histogram; the agent's `[perception.drift]` defaults."""

    classes: tuple[str, ...]
    conf_bins: int = 10
    image_bins: int = 16
    max_boxes: int = 15
    image_width: int = 160


def image_stats(image: Image, width: int = 160) -> tuple[float, float, float]:
    """Brightness (grey mean), contrast (grey std) and blur (Laplacian variance) of an image.

    >>> image_stats(np.full((480, 640, 3), 128, np.uint8))
    (128.0, 0.0, 0.0)
    """
    small: MatLike = _shrink(image, width)
    if small.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if small.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        small = cv2.cvtColor(small, code)
    mean, std = cv2.meanStdDev(small)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(small, cv2.CV_32F))
    return float(mean[0, 0]), float(std[0, 0]), float(lap_std[0, 0]) ** 2


def _shrink(image: MatLike, width: int) -> MatLike:
    h, w = image.shape[:2]
    while w >= 2 * width and h >= 2:
        w, h = w // 2, h // 2
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    if w > width:
        h = max(1, round(h * width / w))
        image = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    return image


def _bin(value: float, top: float, bins: int) -> int:
    return min(max(int(value / top * bins), 0), bins - 1)


def _normalised(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [c / total for c in counts] if total else [0.0] * len(counts)


@dataclass
class BaselineCounter:
    """Counts frames (predictions and pixels) into the baseline histograms."""

    layout: BinLayout
    counts: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        lay = self.layout
        self.counts = {
            "class_frac": [0] * len(lay.classes),
            "conf_hist": [0] * lay.conf_bins,
            "boxes_hist": [0] * (lay.max_boxes + 1),
            "brightness_hist": [0] * lay.image_bins,
            "contrast_hist": [0] * lay.image_bins,
            "blur_hist": [0] * lay.image_bins,
        }

    def add(self, class_ids: Sequence[int], confs: Sequence[float], image: Image | None) -> None:
        """Count one frame: the class index and confidence of each object, and its pixels."""
        lay, counts = self.layout, self.counts
        counts["boxes_hist"][min(len(class_ids), lay.max_boxes)] += 1
        for cls, conf in zip(class_ids, confs, strict=True):
            if 0 <= cls < len(lay.classes):
                counts["class_frac"][cls] += 1
            counts["conf_hist"][_bin(conf, 1.0, lay.conf_bins)] += 1
        if image is not None:
            brightness, contrast, blur = image_stats(image, lay.image_width)
            for key, value, top in (
                ("brightness", brightness, _BRIGHTNESS_MAX),
                ("contrast", contrast, _CONTRAST_MAX),
                ("blur", math.log10(1.0 + blur), _BLUR_LOG_MAX),
            ):
                counts[f"{key}_hist"][_bin(value, top, lay.image_bins)] += 1

    def histograms(self) -> dict[str, list[float]]:
        """Every histogram, normalised: the shape of `protocol.ModelManifest.baseline`."""
        return {key: _normalised(counts) for key, counts in self.counts.items()}
