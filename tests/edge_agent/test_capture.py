"""Capture for retraining: band, sampling, caps, crash leftovers, upload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import orjson
import pytest
from pydantic import ValidationError

from edge_agent.perception.capture import (
    Captured,
    CaptureSection,
    CaptureStore,
    upload_pending,
)
from protocol import Box, DetectedObject, FrameResult, ModelRef

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODEL = ModelRef(name="yolo", version="1.2", sha256="a" * 64)
IMAGE = np.dstack([np.tile(np.arange(64, dtype=np.uint8) * 4, (48, 1))] * 3)


def result(i: int, *confs: float) -> FrameResult:
    objects = [
        DetectedObject(cls="person", conf=c, box=Box(x1=0.1, y1=0.1, x2=0.4, y2=0.9)) for c in confs
    ]
    return FrameResult(
        ts=T0 + timedelta(seconds=i * 2),
        frame_id=f"frame-{i}",
        model=MODEL,
        objects=objects,
        latency_ms=8.0,
    )


def store(tmp_path: Path, **kwargs) -> CaptureStore:
    options = {"band": (0.3, 0.6), "probability": 1.0, "min_interval_s": 0.0, **kwargs}
    return CaptureStore(tmp_path / "capture", **options)


def test_only_frames_whose_top_confidence_is_in_the_band_are_kept(tmp_path):
    capture = store(tmp_path)
    offered = [
        result(0, 0.45),  # unsure: kept
        result(1, 0.45, 0.9),  # the top one is sure: not kept
        result(2, 0.2),
        result(3),  # nothing seen: top 0.0
        result(4, 0.6),  # the band is closed
    ]
    assert [capture.offer(r, IMAGE) for r in offered] == [True, False, False, False, True]
    assert [i.frame_id for i in capture.pending()] == ["frame-0", "frame-4"]
    assert (capture.counts.offered, capture.counts.in_band, capture.counts.captured) == (5, 2, 2)


def test_a_stored_frame_is_a_jpeg_and_a_sidecar_with_the_frame_result(tmp_path):
    capture = store(tmp_path)
    capture.offer(result(0, 0.5, 0.1), IMAGE)
    (item,) = capture.pending()
    jpeg, sidecar = item.read()
    decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded is not None
    assert decoded.shape == IMAGE.shape
    assert np.abs(decoded.astype(int) - IMAGE).mean() < 3
    meta = orjson.loads(sidecar)
    assert (meta["id"], meta["width"], meta["height"], meta["top_conf"]) == (item.id, 64, 48, 0.5)
    assert FrameResult.model_validate(meta["result"]) == result(0, 0.5, 0.1)
    assert item.ts == T0
    assert item.size == len(jpeg) + len(sidecar) == capture.stored_bytes
    assert item.jpeg.stat().st_mode & 0o777 == 0o600  # frames may show people


def test_sampling_is_seeded_and_spaced(tmp_path):
    def kept(seed: int, directory: str, **kwargs) -> list[bool]:
        capture = store(tmp_path / directory, **{"probability": 0.5, "seed": seed, **kwargs})
        return [capture.offer(result(i, 0.5), IMAGE) for i in range(40)]

    first = kept(7, "a")
    assert first == kept(7, "b")
    assert 8 < sum(first) < 32
    assert not any(kept(7, "c", probability=0.0))
    spaced = kept(7, "d", probability=1.0, min_interval_s=5.0)  # frames are 2 s apart
    assert spaced == [i % 3 == 0 for i in range(40)]


def test_the_store_is_capped_by_count_oldest_first(tmp_path):
    capture = store(tmp_path, max_frames=3)
    for i in range(5):
        capture.offer(result(i, 0.5), IMAGE)
    assert [i.frame_id for i in capture.pending()] == ["frame-2", "frame-3", "frame-4"]
    assert capture.counts.evicted == 2
    assert len(list((tmp_path / "capture").iterdir())) == 6


def test_the_store_is_capped_by_bytes(tmp_path):
    probe = store(tmp_path / "probe")
    probe.offer(result(0, 0.5), IMAGE)
    one = probe.stored_bytes
    capture = store(tmp_path, max_bytes=int(one * 2.5))
    for i in range(4):
        capture.offer(result(i, 0.5), IMAGE)
    assert len(capture.pending()) == 2
    assert capture.stored_bytes <= one * 2.5
    assert capture.counts.evicted == 2


def test_reopening_keeps_items_and_drops_what_a_crash_left(tmp_path):
    capture = store(tmp_path)
    for i in range(3):
        capture.offer(result(i, 0.5), IMAGE)
    first, second, third = capture.pending()
    directory = tmp_path / "capture"
    (directory / f".{first.jpeg.name}.4242.tmp").write_bytes(b"half a jpeg")
    second.sidecar.unlink()  # crashed after the JPEG, before the sidecar
    third.jpeg.unlink()  # a sidecar alone is not an item either
    (directory / "notes.txt").write_text("someone else's")
    reopened = store(tmp_path)
    assert [i.id for i in reopened.pending()] == [first.id]
    assert reopened.stored_bytes == first.size
    assert sorted(p.name for p in directory.iterdir()) == sorted(
        [first.jpeg.name, first.sidecar.name, "notes.txt"]
    )


def test_take_then_mark_uploaded_deletes_only_what_was_sent(tmp_path):
    capture = store(tmp_path)
    for i in range(4):
        capture.offer(result(i, 0.5), IMAGE)
    batch = capture.take(3)
    assert [i.frame_id for i in batch] == ["frame-0", "frame-1", "frame-2"]
    assert len(capture.pending()) == 4  # taking does not remove
    assert capture.mark_uploaded([batch[0].id, batch[1].id, "unknown"]) == 2
    assert [i.frame_id for i in capture.pending()] == ["frame-2", "frame-3"]
    assert not batch[0].jpeg.exists()
    assert capture.stored_bytes == sum(i.size for i in capture.pending())


class FakeUploader:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []
        self.fail_after = fail_after

    async def upload(self, item: Captured, jpeg: bytes, sidecar: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionError("hub unreachable")
        self.sent.append((item.id, jpeg, sidecar))


async def test_upload_pending_sends_oldest_first_and_deletes_what_was_sent(tmp_path):
    capture = store(tmp_path)
    for i in range(4):
        capture.offer(result(i, 0.5), IMAGE)
    items = capture.pending()
    items[1].sidecar.unlink()  # evicted between take and read: skipped
    uploader = FakeUploader()
    assert await upload_pending(capture, uploader, 3) == 2
    assert [s[0] for s in uploader.sent] == [items[0].id, items[2].id]
    assert uploader.sent[0][1].startswith(b"\xff\xd8")
    assert [i.id for i in capture.pending()] == [items[1].id, items[3].id]


async def test_an_upload_failure_keeps_the_rest(tmp_path):
    capture = store(tmp_path)
    for i in range(3):
        capture.offer(result(i, 0.5), IMAGE)
    with pytest.raises(ConnectionError):
        await upload_pending(capture, FakeUploader(fail_after=1), 10)
    assert [i.frame_id for i in capture.pending()] == ["frame-1", "frame-2"]


def test_section_builds_a_store_in_the_data_dir(tmp_path):
    section = CaptureSection(enabled=True, band=(0.2, 0.5), seed=3)
    capture = CaptureStore.from_section(section, tmp_path)
    assert capture.directory == tmp_path / "capture"
    assert (tmp_path / "capture").stat().st_mode & 0o777 == 0o700
    with pytest.raises(ValidationError, match="lo must not exceed hi"):
        CaptureSection(band=(0.6, 0.3))
