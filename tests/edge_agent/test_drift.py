"""Drift statistics: image measures, histograms shaped like the baseline, windows, comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.perception.drift import (
    DriftSection,
    DriftStats,
    DriftWindow,
    Image,
    ImageStats,
    Layout,
    baseline_from,
    compare,
    image_stats,
)
from protocol import Box, DetectedObject, ModelManifest, TelemetryBatch

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ("person", "pallet", "forklift")
BOX = Box(x1=0.1, y1=0.1, x2=0.2, y2=0.3)


def det(cls: str, conf: float) -> DetectedObject:
    return DetectedObject(cls=cls, conf=conf, box=BOX)


def u8(image: object) -> Image:
    """OpenCV's output as the uint8 array the agent's camera sources hand on."""
    return np.asarray(image, dtype=np.uint8)


def scene(width: int = 640, height: int = 480, seed: int = 0) -> Image:
    """A textured BGR frame: 40 x 30 random blocks at any resolution, smoothed a little."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(30, 220, (30, 40, 3), dtype=np.uint8)
    image = cv2.resize(blocks, (width, height), interpolation=cv2.INTER_NEAREST)
    return u8(cv2.GaussianBlur(image, (3, 3), 0))


def test_image_stats_of_flat_and_textured_frames():
    flat = image_stats(np.full((480, 640, 3), 90, np.uint8))
    assert flat == pytest.approx(ImageStats(90.0, 0.0, 0.0), abs=1e-5)
    sharp = image_stats(scene())
    assert 100 < sharp.brightness < 150
    assert sharp.contrast > 20
    blurred = image_stats(u8(cv2.GaussianBlur(scene(), (31, 31), 0)))
    assert blurred.blur < sharp.blur / 4  # a defocused camera reads as much less sharp
    assert abs(blurred.brightness - sharp.brightness) < 2


def test_image_stats_do_not_depend_on_resolution_or_channels():
    big = scene(1920, 1440)  # the same view from a sharper camera
    small = image_stats(u8(cv2.resize(big, (640, 480), interpolation=cv2.INTER_AREA)))
    large = image_stats(big)
    assert large.brightness == pytest.approx(small.brightness, abs=0.5)
    assert large.contrast == pytest.approx(small.contrast, rel=0.01)
    assert large.blur == pytest.approx(small.blur, rel=0.02)
    bgr = image_stats(scene())
    grey = u8(cv2.cvtColor(scene(), cv2.COLOR_BGR2GRAY))
    assert image_stats(grey) == pytest.approx(bgr, rel=0.02)
    bgra = u8(cv2.cvtColor(scene(), cv2.COLOR_BGR2BGRA))
    assert image_stats(bgra) == pytest.approx(bgr, rel=0.02)


def test_histogram_bins_follow_the_documented_layout():
    stats = DriftStats(Layout(CLASSES, conf_bins=4, image_bins=4, max_boxes=2))
    stats.add([det("person", 0.0), det("person", 0.25), det("pallet", 1.0), det("cat", 0.6)])
    stats.add([], ImageStats(brightness=255.0, contrast=500.0, blur=0.0))
    stats.add([det("forklift", 0.74)], ImageStats(brightness=0.0, contrast=31.9, blur=99.0))
    hists = stats.histograms()
    assert hists["class_frac"] == [0.5, 0.25, 0.25]  # "cat" is not a model class
    assert hists["conf_hist"] == [0.2, 0.2, 0.4, 0.2]
    assert hists["boxes_hist"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])  # 4 boxes: "2 or more"
    assert hists["brightness_hist"] == [0.5, 0.0, 0.0, 0.5]
    assert hists["contrast_hist"] == [0.5, 0.0, 0.0, 0.5]  # 500 lands in the last bin
    assert hists["blur_hist"] == [0.5, 0.0, 0.5, 0.0]  # log10(100) = 2 of 4
    assert stats.means() == {
        "boxes_per_frame": pytest.approx(5 / 3),
        "brightness": 127.5,
        "contrast": pytest.approx(265.95),
        "blur": 49.5,
    }


def test_empty_stats_are_all_zeros_not_nan():
    hists = DriftStats(Layout(CLASSES)).histograms()
    assert all(set(h) == {0.0} for h in hists.values())
    assert DriftStats(Layout(CLASSES)).means() == {"boxes_per_frame": 0.0}


frames = st.lists(
    st.lists(st.tuples(st.sampled_from([*CLASSES, "unknown"]), st.floats(0, 1)), max_size=20).map(
        lambda objs: [det(c, p) for c, p in objs]
    ),
    min_size=1,
    max_size=20,
)


@settings(max_examples=60, deadline=None)
@given(frames=frames, bins=st.integers(2, 20))
def test_every_histogram_sums_to_one_and_fits_a_manifest(frames, bins):
    stats = DriftStats(Layout(CLASSES, conf_bins=bins))
    for objects in frames:
        stats.add(objects, ImageStats(128.0, 40.0, 300.0))
    hists = stats.histograms()
    assert len(hists["conf_hist"]) == bins
    assert len(hists["class_frac"]) == len(CLASSES)
    for key, hist in hists.items():
        counted = sum(hist)
        assert counted == pytest.approx(1.0) or (
            counted == 0 and key in ("class_frac", "conf_hist")
        )
    ModelManifest(
        name="m",
        version="1",
        sha256="0" * 64,
        size=1,
        url="https://hub/m.onnx",
        input_size=(640, 640),
        classes=list(CLASSES),
        baseline=hists,
        created_at=T0,
    )


def test_a_baseline_from_the_same_frames_compares_as_identical():
    layout = Layout(CLASSES)
    data = [([det("person", 0.9)], scene(seed=1)), ([det("pallet", 0.4)] * 2, scene(seed=2))]
    baseline = baseline_from(data, layout)
    window = DriftWindow(DriftSection(window_frames=2), CLASSES, baseline=baseline)
    window.add(T0, *data[0])
    points = window.add(T0 + timedelta(seconds=1), *data[1])
    js = {p.tags["hist"]: p.value for p in points if p.metric == "drift.js"}
    assert js == dict.fromkeys(baseline, 0.0)


def test_compare_measures_shift_and_skips_what_it_cannot_compare():
    base = {"conf_hist": [0.25, 0.25, 0.25, 0.25], "class_frac": [1.0, 0.0]}
    shifted = {"conf_hist": [0.7, 0.1, 0.1, 0.1], "class_frac": [0.0, 0.0], "extra": [1.0]}
    js = compare(shifted, base)
    assert list(js) == ["conf_hist"]  # empty class_frac and unknown key are left out
    assert 0.1 < js["conf_hist"] < 0.3
    assert compare(base, shifted) == js  # symmetric
    assert compare({"conf_hist": [1.0, 0.0]}, {"conf_hist": [0.0, 1.0]}) == {"conf_hist": 1.0}
    assert compare({"conf_hist": [1.0, 0.0, 0.0]}, {"conf_hist": [1.0, 0.0]}) == {}
    psi = compare(shifted, base, "psi")["conf_hist"]
    assert psi > 0.25  # "shifted" by the usual reading


def test_window_closes_by_time_and_sends_drift_telemetry():
    window = DriftWindow(
        DriftSection(window_s=10, conf_bins=4, image_bins=4, max_boxes=3),
        CLASSES,
        tags={"camera": "front", "model": "yolo-1.2"},
    )
    assert window.add(T0, [det("person", 0.9), det("pallet", 0.3)], scene()) == []
    assert window.add(T0 + timedelta(seconds=5), []) == []
    points = window.add(T0 + timedelta(seconds=10), [det("person", 0.8)], scene(seed=3))
    TelemetryBatch(points=points)  # a valid uplink batch as is
    by = {(p.metric, tuple(sorted(p.tags.items()))): p.value for p in points}
    tags = (("camera", "front"), ("model", "yolo-1.2"))
    assert by[("drift.frames", tags)] == 3
    assert by[("drift.window_s", tags)] == 10
    assert by[("drift.boxes_per_frame", tags)] == 1
    assert ("drift.class_frac", (*tags[:1], ("cls", "person"), *tags[1:])) in by
    assert not any(p.tags.get("cls") == "forklift" for p in points)  # unseen: absent
    conf = [p.value for p in points if p.metric == "drift.conf_hist"]
    assert conf == pytest.approx([0.0, 1 / 3, 0.0, 2 / 3])
    bins = [p.tags["bin"] for p in points if p.metric == "drift.brightness_hist"]
    assert bins == ["00", "01", "02", "03"]
    assert all(p.ts == T0 + timedelta(seconds=10) for p in points)
    assert window.flush(T0 + timedelta(seconds=11)) == []  # the next window is empty


def test_window_by_frames_and_image_every_nth_frame():
    window = DriftWindow(DriftSection(window_frames=4, image_every=2), CLASSES)
    for i in range(3):
        assert window.add(T0 + timedelta(seconds=i), [], scene(seed=i)) == []
    points = window.add(T0 + timedelta(seconds=3), [], scene())
    hist = [p.value for p in points if p.metric == "drift.brightness_hist"]
    assert sum(hist) == pytest.approx(1.0)
    assert not [p for p in points if p.metric == "drift.conf_hist"]  # no object seen
    assert window._stats.frames == 0
    stats = DriftStats(Layout(CLASSES))
    for i in (0, 2):
        stats.add([], image_stats(scene(seed=i)))
    assert hist == stats.histograms()["brightness_hist"]  # frames 0 and 2 measured


def test_flush_of_an_unused_window_sends_nothing():
    assert DriftWindow(DriftSection(), CLASSES).flush(T0) == []


def test_image_statistics_are_capped_per_second_by_frame_time():
    """A 100 fps camera gets image statistics on 5 frames a second; a 2 fps one on all."""
    fast = DriftWindow(DriftSection(window_s=10, image_hz=5), CLASSES)
    for i in range(100):  # one second at 100 fps
        fast.add(T0 + timedelta(milliseconds=10 * i), [], scene(seed=i % 3))
    assert fast._stats.imaged == 5
    slow = DriftWindow(DriftSection(window_s=10, image_hz=5), CLASSES)
    for i in range(8):  # 2 fps with 30 ms of jitter
        slow.add(T0 + timedelta(milliseconds=500 * i + (30 if i % 2 else 0)), [], scene())
    assert slow._stats.imaged == 8
    every = DriftWindow(DriftSection(window_s=10, image_hz=0), CLASSES)
    for i in range(20):
        every.add(T0 + timedelta(milliseconds=i), [], scene())
    assert every._stats.imaged == 20
