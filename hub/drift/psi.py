"""Population stability index of a device's drift window against a reference distribution.

An agent sends, per drift window, the histograms of `edge_agent.perception.drift`
as telemetry: `drift.class_frac` (tag `cls`, classes seen only) and
`drift.<key>` with tag `bin` ("00", "01", ...) for `conf_hist`, `boxes_hist`,
`brightness_hist`, `contrast_hist` and `blur_hist`. The model's manifest carries the
same histograms computed on its validation set (`baseline`, written by `outpost
train`). PSI per histogram:

    PSI = sum over bins of (actual - expected) * ln(actual / expected)

with both sides floored at `EPSILON` (1 %): a window holds about a hundred frames, so a
bin left empty by chance must not weigh like a real shift (with a floor of 0.01 % one
empty bin alone scores over 0.3). Ordinal histograms (every `*_hist`: confidence, boxes
per frame, brightness, contrast, blur) are first smoothed over neighbouring bins
(`smooth`): a steady camera whose brightness sits on a bin edge moves its frames between
two adjacent bins from one window to the next, which is no shift at all, while a
blackout moves them across the whole range. The usual reading: under 0.1 stable, 0.1 to
0.25 worth watching, over 0.25 a real shift.

The reference is either the model's training baseline (`drift.psi_train`: how far this
camera is from the data the model learned from, which a specific site always is a
little) or the device's own reference (`drift.psi`: what this camera normally shows
under this model, learned from its first windows; see `hub.drift.reference`).

Example:
    >>> psi([0.5, 0.5], [0.5, 0.5])
    0.0
    >>> round(psi([0.9, 0.1], [0.5, 0.5]), 3)
    0.879
    >>> window = Window("amr-7", 1_700_000_000_000)
    >>> window.add("drift.brightness_hist", {"bin": "01"}, 1.0)
    >>> window.add("drift.class_frac", {"cls": "person"}, 1.0)
    >>> baseline = {"brightness_hist": [0.5, 0.5], "class_frac": [0.5, 0.5]}
    >>> window.histograms(["person", "forklift"], baseline)
    {'brightness_hist': [0.0, 1.0], 'class_frac': [1.0, 0.0]}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

EPSILON = 0.01
INPUT_KEYS = ("brightness_hist", "contrast_hist", "blur_hist")
"""What the camera sees, before the model: `drift.psi_input` is the worst of these."""
HIST_PREFIX = "drift."
CLASS_KEY = "class_frac"
WINDOW_TAGS_DROPPED = frozenset({"bin", "cls"})
"""Tags that tell bins apart; the rest (camera, model) name the window."""


def psi(actual: Sequence[float], expected: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of `actual` against `expected` (same bins)."""
    if len(actual) != len(expected):
        raise ValueError(f"{len(actual)} bins against {len(expected)}")
    total = 0.0
    for a, e in zip(actual, expected, strict=True):
        a, e = max(a, epsilon), max(e, epsilon)
        total += (a - e) * math.log(a / e)
    return round(total, 6)


@dataclass
class Window:
    """The histogram points of one device's window (one timestamp), as they arrive."""

    device: str
    ts_ms: int
    tags: dict[str, str] = field(default_factory=dict)
    bins: dict[str, dict[int, float]] = field(default_factory=dict)
    classes: dict[str, float] = field(default_factory=dict)

    def add(self, metric: str, tags: Mapping[str, str], value: float) -> None:
        """Take one `drift.*` point; other metrics and unbinned means are ignored."""
        key = metric.removeprefix(HIST_PREFIX)
        if not self.tags:
            self.tags = {k: v for k, v in tags.items() if k not in WINDOW_TAGS_DROPPED}
        if key == CLASS_KEY and "cls" in tags:
            self.classes[tags["cls"]] = value
        elif key.endswith("_hist") and tags.get("bin", "").isdigit():
            self.bins.setdefault(key, {})[int(tags["bin"])] = value

    def histograms(
        self, classes: Sequence[str], baseline: Mapping[str, Sequence[float]]
    ) -> dict[str, list[float]]:
        """The window's histograms shaped like the baseline's (keys it has and we saw)."""
        out: dict[str, list[float]] = {}
        for key, expected in baseline.items():
            if key == CLASS_KEY:
                continue
            seen = self.bins.get(key)
            if seen:
                out[key] = [seen.get(i, 0.0) for i in range(len(expected))]
        if CLASS_KEY in baseline and classes and (self.classes or self.bins):
            out[CLASS_KEY] = [self.classes.get(c, 0.0) for c in classes]
        return out


def scores(
    window: Window, classes: Sequence[str], baseline: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """PSI per histogram the window and the baseline share."""
    return compare(live_histograms(window, classes, baseline), baseline)


def live_histograms(
    window: Window, classes: Sequence[str], baseline: Mapping[str, Sequence[float]]
) -> dict[str, list[float]]:
    """The window's non-empty histograms shaped like the baseline's."""
    return {
        key: actual
        for key, actual in window.histograms(classes, baseline).items()
        if len(baseline[key]) == len(actual) and sum(actual) > 0
    }


def compare(
    live: Mapping[str, Sequence[float]], reference: Mapping[str, Sequence[float]]
) -> dict[str, float]:
    """PSI per histogram both sides have (with the same bins), ordinal ones smoothed."""
    out = {}
    for key, actual in live.items():
        expected = reference.get(key)
        if expected is None or len(expected) != len(actual) or sum(expected) <= 0:
            continue
        if key.endswith("_hist"):
            actual, expected = smooth(actual), smooth(expected)
        out[key] = psi(actual, expected)
    return out


def smooth(hist: Sequence[float]) -> list[float]:
    """Each bin's share spread 1/4, 1/2, 1/4 over itself and its neighbours (what would
    fall off either end stays in the end bin), so the total is unchanged.

    Example:
        >>> smooth([0.0, 1.0, 0.0, 0.0])
        [0.25, 0.5, 0.25, 0.0]
        >>> smooth([1.0, 0.0])
        [0.75, 0.25]
    """
    last = len(hist) - 1
    out = [0.0] * len(hist)
    for i, share in enumerate(hist):
        out[max(i - 1, 0)] += share / 4
        out[i] += share / 2
        out[min(i + 1, last)] += share / 4
    return out
