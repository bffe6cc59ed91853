"""The training baseline and the agent's drift windows bin alike (the hub compares them)."""

from __future__ import annotations

import numpy as np
import pytest

from edge_agent.perception.drift import DriftSection, Layout, baseline_from
from protocol import Box, DetectedObject
from training.baseline import BaselineCounter, BinLayout, image_stats

CLASSES = ("person", "cart", "forklift")


def random_frames(seed: int, count: int = 40):
    rng = np.random.default_rng(seed)
    box = Box(x1=0.1, y1=0.1, x2=0.3, y2=0.3)
    for _ in range(count):
        n = int(rng.integers(0, 20))  # past max_boxes sometimes
        ids = [int(i) for i in rng.integers(0, len(CLASSES), n)]
        confs = [float(c) for c in rng.uniform(0.0, 1.0, n)]
        if n:
            confs[0] = 1.0  # the last bin's edge
        h, w = int(rng.integers(20, 700)), int(rng.integers(20, 900))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        if rng.random() < 0.5:  # smooth, dark or bright frames spread the image histograms
            image = (image // int(rng.integers(1, 8)) + int(rng.integers(0, 120))).astype(np.uint8)
        objects = [
            DetectedObject(cls=CLASSES[i], conf=c, box=box) for i, c in zip(ids, confs, strict=True)
        ]
        yield ids, confs, objects, image


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_histograms_equal_the_agents(seed: int) -> None:
    section = DriftSection()
    layout = BinLayout(CLASSES)
    assert (layout.conf_bins, layout.image_bins, layout.max_boxes, layout.image_width) == (
        section.conf_bins,
        section.image_bins,
        section.max_boxes,
        section.image_width,
    )
    counter = BaselineCounter(layout)
    frames = []
    for ids, confs, objects, image in random_frames(seed):
        counter.add(ids, confs, image)
        frames.append((objects, image))
    ours = counter.histograms()
    theirs = baseline_from(frames, Layout.from_section(section, CLASSES))
    assert ours == theirs
    assert all(sum(h) == pytest.approx(1.0) for h in ours.values())


def test_image_statistics_equal_the_agents() -> None:
    from edge_agent.perception.drift import image_stats as agent_stats

    rng = np.random.default_rng(5)
    for shape in [(480, 640, 3), (33, 1000, 3), (100, 100), (720, 1280, 4)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        assert image_stats(image) == tuple(agent_stats(image))


def test_nothing_counted_gives_zeros() -> None:
    histograms = BaselineCounter(BinLayout(CLASSES)).histograms()
    assert all(set(h) == {0.0} for h in histograms.values())
