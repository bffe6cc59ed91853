"""Drift statistics: what the camera sees and what the model answers, per time window.

Per window the agent sends `drift.*` telemetry; the hub (or the agent itself,
given the model's baseline) compares the window's histograms with the ones the
training pipeline computed on the training set and stored in
`protocol.ModelManifest.baseline`. Both sides use `DriftStats`, so a histogram
here has exactly the shape of the baseline entry with the same key:

| key               | share of | bins                                                        |
|-------------------|----------|-------------------------------------------------------------|
| `class_frac`      | objects  | one per model class, in the manifest's `classes` order      |
| `conf_hist`       | objects  | `conf_bins` equal bins of confidence on [0, 1]              |
| `boxes_hist`      | frames   | objects per frame: 0, 1, ..., `max_boxes` (or more)         |
| `brightness_hist` | frames   | `image_bins` equal bins, mean grey level on [0, 256)        |
| `contrast_hist`   | frames   | `image_bins` equal bins, grey std deviation on [0, 128)     |
| `blur_hist`       | frames   | `image_bins` equal bins, log10(1 + Laplacian var) on [0, 4) |

Values past the last bin count in the last bin. Each histogram sums to 1, or is
all zeros when nothing was counted. Image statistics are computed on a grey copy
scaled to `image_width` pixels wide (by repeated halving, then area averaging),
so a 1920-wide training image and a 640-wide camera frame are measured alike.

Telemetry per window (every point carries the window's `tags`, e.g. camera and model):
`drift.frames`, `drift.window_s`, `drift.boxes_per_frame`, `drift.brightness`,
`drift.contrast`, `drift.blur` (means), `drift.class_frac` (tag `cls`, classes seen
only: absent means 0), `drift.conf_hist`, `drift.boxes_hist`, `drift.brightness_hist`,
`drift.contrast_hist`, `drift.blur_hist` (tag `bin`: "00", "01", ...: every bin), and,
when the window knows the baseline, `drift.js` (tag `hist`: the key) from `compare`.

Example (the training side):
    >>> import numpy as np
    >>> from protocol import Box, DetectedObject
    >>> layout = Layout(classes=("person", "cart"), conf_bins=4)
    >>> box = Box(x1=0.1, y1=0.1, x2=0.2, y2=0.2)
    >>> person = DetectedObject(cls="person", conf=0.9, box=box)
    >>> dark, bright = np.full((48, 64), 100, np.uint8), np.full((48, 64), 200, np.uint8)
    >>> frames = [([person], dark), ([], bright)]
    >>> baseline = baseline_from(frames, layout)
    >>> baseline["class_frac"], baseline["conf_hist"], baseline["boxes_hist"][:3]
    ([1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.0])
    >>> compare({"class_frac": [0.5, 0.5]}, baseline)
    {'class_frac': 0.311278}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal, NamedTuple, Protocol

import cv2
import numpy as np
import numpy.typing as npt
from cv2.typing import MatLike
from pydantic import Field

from edge_agent.sections import PositiveSeconds, Section
from protocol import TelemetryPoint

Image = npt.NDArray[np.uint8]
_BRIGHTNESS_MAX, _CONTRAST_MAX, _BLUR_LOG_MAX = 256.0, 128.0, 4.0


class DriftSection(Section):
    """Drift statistics (`[perception.drift]`)."""

    enabled: bool = True
    window_s: PositiveSeconds = 60.0
    window_frames: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    """Also close a window after this many frames (None: by time only)."""
    conf_bins: Annotated[int, Field(ge=2, le=100)] = 10
    image_bins: Annotated[int, Field(ge=2, le=100)] = 16
    max_boxes: Annotated[int, Field(ge=1, le=1000)] = 15
    image_every: Annotated[int, Field(ge=1, le=1000)] = 1
    """Measure brightness, contrast and blur on every n-th frame (1: every frame)."""
    image_hz: Annotated[float, Field(ge=0, le=1000)] = 5.0
    """...and on at most this many frames a second, by frame time (0: no limit). A window
    of 60 s holds up to 300 samples, plenty for its histograms, and a fast camera with a
    fast model does not spend a fifth of a millisecond on every frame."""
    image_width: Annotated[int, Field(ge=16, le=4096)] = 160


class Scored(Protocol):
    """Anything with a class name and a confidence (`protocol.DetectedObject` is one)."""

    @property
    def cls(self) -> str:
        """Class name."""

    @property
    def conf(self) -> float:
        """Confidence, 0..1."""


class ImageStats(NamedTuple):
    """A frame's grey-level mean, standard deviation and variance of its Laplacian."""

    brightness: float
    contrast: float
    blur: float


@dataclass(frozen=True)
class Layout:
    """The bins every histogram uses; the training baseline must be built with the same."""

    classes: tuple[str, ...]
    conf_bins: int = 10
    image_bins: int = 16
    max_boxes: int = 15
    image_width: int = 160

    @classmethod
    def from_section(cls, section: DriftSection, classes: Sequence[str]) -> Layout:
        """The layout a `DriftSection` asks for, for a model with these classes."""
        return cls(
            tuple(classes),
            section.conf_bins,
            section.image_bins,
            section.max_boxes,
            section.image_width,
        )


def image_stats(image: Image, width: int = 160) -> ImageStats:
    """Brightness, contrast and blur of a BGR, BGRA or grey uint8 image, at `width` pixels.

    About 0.1 ms for a 640x480 BGR frame on one core: the halvings do most of the work.

    Example:
        >>> import numpy as np
        >>> image_stats(np.full((480, 640, 3), 128, np.uint8))
        ImageStats(brightness=128.0, contrast=0.0, blur=0.0)
    """
    small: MatLike = _shrink(image, width)
    if small.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if small.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        small = cv2.cvtColor(small, code)
    mean, std = cv2.meanStdDev(small)
    _, lap_std = cv2.meanStdDev(cv2.Laplacian(small, cv2.CV_32F))
    return ImageStats(float(mean[0, 0]), float(std[0, 0]), float(lap_std[0, 0]) ** 2)


def _shrink(image: MatLike, width: int) -> MatLike:
    """Scale down to `width` pixels wide: exact 2x2 means while halving, then area averaging."""
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
class DriftStats:
    """Counts for one set of frames: a window at the edge, or a training set."""

    layout: Layout
    frames: int = 0
    objects: int = 0
    imaged: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    counts: dict[str, list[int]] = field(init=False)

    def __post_init__(self) -> None:
        lay = self.layout
        self._index = {name: i for i, name in enumerate(lay.classes)}
        self.counts = {
            "class_frac": [0] * len(lay.classes),
            "conf_hist": [0] * lay.conf_bins,
            "boxes_hist": [0] * (lay.max_boxes + 1),
            "brightness_hist": [0] * lay.image_bins,
            "contrast_hist": [0] * lay.image_bins,
            "blur_hist": [0] * lay.image_bins,
        }

    def add(self, objects: Sequence[Scored], stats: ImageStats | None = None) -> None:
        """Count one frame's objects, and its image statistics when measured."""
        lay, counts = self.layout, self.counts
        self.frames += 1
        self.objects += len(objects)
        counts["boxes_hist"][min(len(objects), lay.max_boxes)] += 1
        class_counts, conf_counts = counts["class_frac"], counts["conf_hist"]
        for obj in objects:
            index = self._index.get(obj.cls)
            if index is not None:
                class_counts[index] += 1
            conf_counts[_bin(obj.conf, 1.0, lay.conf_bins)] += 1
        if stats is not None:
            self.add_image(stats)

    def add_image(self, stats: ImageStats) -> None:
        """Count one frame's image statistics."""
        bins, counts = self.layout.image_bins, self.counts
        self.imaged += 1
        blur_log = math.log10(1.0 + stats.blur)
        for key, value, top in (
            ("brightness", stats.brightness, _BRIGHTNESS_MAX),
            ("contrast", stats.contrast, _CONTRAST_MAX),
            ("blur", blur_log, _BLUR_LOG_MAX),
        ):
            counts[f"{key}_hist"][_bin(value, top, bins)] += 1
        for i, value in enumerate(stats):
            self.sums[i] += value

    def histograms(self) -> dict[str, list[float]]:
        """Every histogram, normalised: the shape of `ModelManifest.baseline`."""
        return {key: _normalised(counts) for key, counts in self.counts.items()}

    def means(self) -> dict[str, float]:
        """Boxes per frame, and brightness, contrast and blur means where images were measured."""
        out = {"boxes_per_frame": self.objects / self.frames if self.frames else 0.0}
        if self.imaged:
            for name, total in zip(ImageStats._fields, self.sums, strict=True):
                out[name] = total / self.imaged
        return out


def baseline_from(
    frames: Iterable[tuple[Sequence[Scored], Image | ImageStats | None]], layout: Layout
) -> dict[str, list[float]]:
    """The histograms of a set of frames (e.g. the model's predictions on its validation set).

    Each frame is `(objects, image)`; `image` may be the pixels, their `ImageStats`
    or None. Example: see the module docstring.
    """
    stats = DriftStats(layout)
    for objects, image in frames:
        if image is None or isinstance(image, ImageStats):
            stats.add(objects, image)
        else:
            stats.add(objects, image_stats(image, layout.image_width))
    return stats.histograms()


def compare(
    window: Mapping[str, Sequence[float]],
    baseline: Mapping[str, Sequence[float]],
    method: Literal["js", "psi"] = "js",
) -> dict[str, float]:
    """Distance per histogram found in both with the same number of bins, both non-empty.

    `js`: Jensen-Shannon divergence, base 2 (0: the same, 1: disjoint). `psi`: the
    population stability index, with empty bins smoothed to 1e-4 (a common rule of
    thumb reads < 0.1 as stable and > 0.25 as shifted). Keys that differ in shape
    are left out rather than guessed at. Results are rounded to 6 places.

    Example:
        >>> compare({"conf_hist": [0.5, 0.5]}, {"conf_hist": [0.5, 0.5]})
        {'conf_hist': 0.0}
        >>> compare({"conf_hist": [1.0, 0.0], "x": [1.0]}, {"conf_hist": [0.0, 1.0]})
        {'conf_hist': 1.0}
        >>> compare({"conf_hist": [0.6, 0.4]}, {"conf_hist": [0.5, 0.5]}, "psi")
        {'conf_hist': 0.040547}
    """
    distance = _js if method == "js" else _psi
    out: dict[str, float] = {}
    for key, p in window.items():
        q = baseline.get(key)
        if q is None or len(q) != len(p) or sum(p) <= 0 or sum(q) <= 0:
            continue
        out[key] = round(distance(_unit(p), _unit(q)), 6)
    return out


def _unit(values: Sequence[float]) -> list[float]:
    total = sum(values)
    return [v / total for v in values]


def _js(p: list[float], q: list[float]) -> float:
    m = [(a + b) / 2 for a, b in zip(p, q, strict=True)]

    def kl(a: list[float]) -> float:
        return sum(x * math.log2(x / y) for x, y in zip(a, m, strict=True) if x > 0)

    return max(0.0, (kl(p) + kl(q)) / 2)


def _psi(p: list[float], q: list[float], floor: float = 1e-4) -> float:
    return sum(
        (a - b) * math.log(a / b)
        for a, b in ((max(x, floor), max(y, floor)) for x, y in zip(p, q, strict=True))
    )


class DriftWindow:
    """Collects frames and turns each closed window into `drift.*` telemetry points.

    Example:
        >>> from datetime import UTC, datetime, timedelta
        >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
        >>> window = DriftWindow(DriftSection(window_s=10), ("person",), tags={"camera": "front"})
        >>> window.add(t0, [])
        []
        >>> points = window.add(t0 + timedelta(seconds=10), [])
        >>> [(p.metric, p.value) for p in points][:2]
        [('drift.frames', 2.0), ('drift.window_s', 10.0)]
    """

    def __init__(
        self,
        section: DriftSection,
        classes: Sequence[str],
        *,
        tags: Mapping[str, str] | None = None,
        baseline: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.section = section
        self.layout = Layout.from_section(section, classes)
        self.tags = dict(tags or {})
        self.baseline = baseline
        self._stats = DriftStats(self.layout)
        self._start: datetime | None = None
        self._seen = 0
        self._next_image: datetime | None = None

    def add(
        self, ts: datetime, objects: Sequence[Scored], image: Image | None = None
    ) -> list[TelemetryPoint]:
        """Count one frame; when that closes the window, its points (else an empty list)."""
        if self._start is None:
            self._start = ts
        self._seen += 1
        stats = None
        if image is not None and self._image_due(ts):
            stats = image_stats(image, self.layout.image_width)
        self._stats.add(objects, stats)
        limit = self.section.window_frames
        elapsed = (ts - self._start).total_seconds()
        if elapsed >= self.section.window_s or (limit is not None and self._stats.frames >= limit):
            return self.flush(ts)
        return []

    def _image_due(self, ts: datetime) -> bool:
        """Whether this frame gets image statistics: every `image_every`-th frame, and no
        more than `image_hz` a second on average (frame-time jitter does not skip frames
        that arrive at about that rate; a long pause does not cause a burst)."""
        if (self._seen - 1) % self.section.image_every:
            return False
        hz = self.section.image_hz
        if not hz:
            return True
        if self._next_image is not None and ts < self._next_image:
            return False
        interval = timedelta(seconds=1 / hz)
        due = ts if self._next_image is None else self._next_image
        self._next_image = max(due + interval, ts)
        return True

    def flush(self, ts: datetime) -> list[TelemetryPoint]:
        """Close the window now: its points (none if it saw no frame), and start a new one."""
        stats, start = self._stats, self._start
        self._stats, self._start = DriftStats(self.layout), None
        if not stats.frames or start is None:
            return []
        values: list[tuple[str, float, dict[str, str]]] = [
            ("frames", stats.frames, {}),
            ("window_s", (ts - start).total_seconds(), {}),
        ]
        values += [(name, mean, {}) for name, mean in stats.means().items()]
        hists = stats.histograms()
        values += [
            ("class_frac", frac, {"cls": cls})
            for cls, frac in zip(self.layout.classes, hists["class_frac"], strict=True)
            if frac > 0
        ]
        for key, hist in hists.items():
            if key != "class_frac" and sum(hist) > 0:  # empty: nothing was measured
                values += [(key, v, {"bin": f"{i:02d}"}) for i, v in enumerate(hist)]
        if self.baseline:
            values += [("js", d, {"hist": key}) for key, d in compare(hists, self.baseline).items()]
        return [
            TelemetryPoint(ts=ts, metric=f"drift.{name}", value=value, tags={**self.tags, **extra})
            for name, value, extra in values
        ]
