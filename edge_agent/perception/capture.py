"""Capture for retraining: frames the model was unsure about, kept locally until asked for.

A frame is a candidate when its top confidence (0.0 for a frame with no object)
lies in the configured band, `lo <= top <= hi`: the frames a better model would
most likely change its mind on. Candidates are sampled (a probability drawn from
a seeded generator, and at least `min_interval_s` of frame time apart, so a
scene that stays uncertain does not fill the store with near-copies) and stored
as `ID.jpg` plus an `ID.json` sidecar holding the `FrameResult` (detections,
model, camera) and the image size. The store is capped by count and by bytes;
the oldest go first, and every eviction is counted.

Crash safety: each file is written to a temporary name, synced and renamed
(`edge_agent.files.write_atomic`), the JPEG before its sidecar; the sidecar is
what makes an item exist and is removed first. On opening, temporary leftovers
and JPEGs without a sidecar (a crash mid-write or mid-removal) are deleted, and
anything else in the directory is left alone.

Upload: a `capture` command asks for up to `max_frames` frames; the agent runs
`upload_pending(store, uploader, max_frames)` with a `CaptureUploader`. The hub
side of that transfer is not built yet: the `CaptureUploader` protocol is the seam.
An item is deleted only after its upload returned, so a crash in between uploads
it again (at least once; the capture id lets the hub drop the repeat).

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from protocol import Box, DetectedObject, FrameResult, ModelRef
    >>> store = CaptureStore(Path(tempfile.mkdtemp()) / "capture", band=(0.3, 0.6), probability=1)
    >>> unsure = DetectedObject(cls="person", conf=0.45, box=Box(x1=0, y1=0, x2=0.5, y2=0.5))
    >>> result = FrameResult(ts=datetime(2026, 1, 1, tzinfo=UTC), frame_id="f-1",
    ...     model=ModelRef(name="yolo", version="1", sha256="0" * 64), objects=[unsure],
    ...     latency_ms=12.0)
    >>> store.offer(result, np.zeros((48, 64, 3), np.uint8))
    True
    >>> [item.frame_id for item in store.pending()]
    ['f-1']
    >>> store.mark_uploaded([item.id for item in store.take(10)])
    1
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Protocol, Self

import cv2
import numpy as np
import numpy.typing as npt
import orjson
from pydantic import Field, model_validator

from edge_agent.files import ensure_private_dir, write_atomic
from edge_agent.sections import Section
from protocol import FrameResult
from protocol.models import Unit

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]
_JPEG, _SIDECAR, _TMP = ".jpg", ".json", ".tmp"


class CaptureSection(Section):
    """Capture for retraining (`[perception.capture]`); off unless enabled."""

    enabled: bool = False
    band: tuple[Unit, Unit] = (0.25, 0.6)
    """Capture frames whose top confidence lies in `[lo, hi]`."""
    probability: Unit = 0.1
    """Share of in-band frames kept (after `min_interval_s`)."""
    min_interval_s: Annotated[float, Field(ge=0, le=86_400)] = 1.0
    max_frames: Annotated[int, Field(ge=1, le=1_000_000)] = 1000
    max_bytes: Annotated[int, Field(ge=1 << 20, le=1 << 40)] = 256 << 20
    jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 90
    seed: int | None = None
    """Seed of the sampling generator (None: fresh entropy)."""
    dir: Path | None = None
    """Default: `capture/` in the device's data directory."""

    @model_validator(mode="after")
    def _band(self) -> Self:
        if self.band[0] > self.band[1]:
            raise ValueError(f"band {list(self.band)}: lo must not exceed hi")
        return self


@dataclass(frozen=True)
class Captured:
    """One stored frame: its JPEG and sidecar on disk."""

    id: str
    jpeg: Path
    sidecar: Path
    size: int
    """Bytes on disk, JPEG and sidecar."""

    @property
    def ts(self) -> datetime:
        """When it was captured (its frame's time, to the millisecond)."""
        return datetime.fromtimestamp(int(self.id.split("-", 1)[0]) / 1000, UTC)

    @property
    def frame_id(self) -> str:
        """The frame's id, from the sidecar."""
        return str(orjson.loads(self.sidecar.read_bytes())["result"]["frame_id"])

    def read(self) -> tuple[bytes, bytes]:
        """The JPEG and sidecar bytes; `FileNotFoundError` if evicted meanwhile."""
        return self.jpeg.read_bytes(), self.sidecar.read_bytes()


@dataclass
class CaptureCounts:
    """What the store did since it was opened (for `capture.*` telemetry)."""

    offered: int = 0
    in_band: int = 0
    captured: int = 0
    evicted: int = 0
    failed: int = 0
    uploaded: int = 0


class CaptureStore:
    """A capped directory of captured frames.

    `offer` runs on one thread (the pipeline's); `pending`, `take` and `mark_uploaded`
    may run on any other at the same time.
    """

    def __init__(
        self,
        directory: Path,
        *,
        band: tuple[float, float] = (0.25, 0.6),
        probability: float = 0.1,
        min_interval_s: float = 1.0,
        max_frames: int = 1000,
        max_bytes: int = 256 << 20,
        jpeg_quality: int = 90,
        seed: int | None = None,
    ) -> None:
        self.directory = directory
        self.band, self.probability, self.min_interval_s = band, probability, min_interval_s
        self.max_frames, self.max_bytes, self.jpeg_quality = max_frames, max_bytes, jpeg_quality
        self.counts = CaptureCounts()
        self._rng = np.random.default_rng(seed)
        self._lock = threading.Lock()
        self._last: datetime | None = None
        ensure_private_dir(directory)
        self._items = {item.id: item for item in self._scan()}
        self._bytes = sum(item.size for item in self._items.values())

    @classmethod
    def from_section(cls, section: CaptureSection, data_dir: Path) -> CaptureStore:
        """The store a `CaptureSection` describes (in `data_dir/capture` unless it names a dir)."""
        return cls(
            section.dir or data_dir / "capture",
            band=section.band,
            probability=section.probability,
            min_interval_s=section.min_interval_s,
            max_frames=section.max_frames,
            max_bytes=section.max_bytes,
            jpeg_quality=section.jpeg_quality,
            seed=section.seed,
        )

    @property
    def stored_bytes(self) -> int:
        """Bytes on disk, JPEGs and sidecars."""
        return self._bytes

    def offer(self, result: FrameResult, image: Image) -> bool:
        """Store this frame if it qualifies (band, interval, sampling); True if stored.

        Cheap unless it stores: the band check comes first. Storing encodes a JPEG and
        syncs two files, so call it from the pipeline's worker thread, not the event loop.
        """
        self.counts.offered += 1
        top = max((o.conf for o in result.objects), default=0.0)
        if not self.band[0] <= top <= self.band[1]:
            return False
        self.counts.in_band += 1
        last = self._last
        if last is not None and (result.ts - last).total_seconds() < self.min_interval_s:
            return False
        if self._rng.random() >= self.probability:
            return False
        self._last = result.ts
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            self.counts.failed += 1
            logger.warning("capture: JPEG encoding failed for frame %.64s", result.frame_id)
            return False
        try:
            self._store(result, image, encoded.tobytes(), top)
        except OSError as exc:
            self.counts.failed += 1
            logger.warning("capture: cannot store frame %.64s: %s", result.frame_id, exc)
            return False
        return True

    def _store(self, result: FrameResult, image: Image, jpeg: bytes, top: float) -> None:
        ms = int(result.ts.timestamp() * 1000)
        capture_id = f"{ms:013d}-{secrets.token_hex(4)}"
        sidecar = orjson.dumps(
            {
                "id": capture_id,
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "top_conf": top,
                "result": result.model_dump(mode="json"),
            }
        )
        item = Captured(
            capture_id,
            self.directory / f"{capture_id}{_JPEG}",
            self.directory / f"{capture_id}{_SIDECAR}",
            len(jpeg) + len(sidecar),
        )
        write_atomic(item.jpeg, jpeg)  # outside the lock: syncing may take a while
        write_atomic(item.sidecar, sidecar)
        with self._lock:
            self._items[capture_id] = item
            self._bytes += item.size
            self.counts.captured += 1
            while self._items and (
                len(self._items) > self.max_frames or self._bytes > self.max_bytes
            ):
                self._remove(next(iter(self._items)))
                self.counts.evicted += 1

    def pending(self) -> list[Captured]:
        """Every stored frame, oldest first."""
        with self._lock:
            return list(self._items.values())

    def take(self, max_frames: int) -> list[Captured]:
        """The oldest `max_frames` stored frames, to upload; they stay until `mark_uploaded`."""
        with self._lock:
            return list(self._items.values())[:max_frames]

    def mark_uploaded(self, ids: Iterable[str]) -> int:
        """Delete frames the hub now holds; returns how many were still here."""
        removed = 0
        with self._lock:
            for capture_id in ids:
                if capture_id in self._items:
                    self._remove(capture_id)
                    removed += 1
            self.counts.uploaded += removed
        return removed

    def _remove(self, capture_id: str) -> None:
        item = self._items.pop(capture_id)
        self._bytes -= item.size
        for path in (item.sidecar, item.jpeg):  # sidecar first: no sidecar, no item
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _scan(self) -> list[Captured]:
        """Items on disk, oldest first; removes what a crash left half-written."""
        files = {p.name for p in self.directory.iterdir() if p.is_file()}
        for name in files:
            if name.startswith(".") and name.endswith(_TMP):
                (self.directory / name).unlink(missing_ok=True)
        ids = {
            name.removesuffix(ext)
            for name in files
            for ext in (_JPEG, _SIDECAR)
            if name.endswith(ext) and _is_capture_id(name.removesuffix(ext))
        }
        items = []
        for capture_id in sorted(ids):
            jpeg = self.directory / f"{capture_id}{_JPEG}"
            sidecar = self.directory / f"{capture_id}{_SIDECAR}"
            if jpeg.name in files and sidecar.name in files:
                size = jpeg.stat().st_size + sidecar.stat().st_size
                items.append(Captured(capture_id, jpeg, sidecar, size))
            else:  # a crash between the two writes or the two removals
                sidecar.unlink(missing_ok=True)
                jpeg.unlink(missing_ok=True)
        return items


def _is_capture_id(text: str) -> bool:
    stamp, _, token = text.partition("-")
    return len(stamp) == 13 and stamp.isdigit() and len(token) == 8


class CaptureUploader(Protocol):
    """Sends one captured frame to the hub (the transport is not built yet)."""

    async def upload(self, item: Captured, jpeg: bytes, sidecar: bytes) -> None:
        """Return once the hub holds it durably; raise to stop the batch."""


async def upload_pending(store: CaptureStore, uploader: CaptureUploader, max_frames: int) -> int:
    """Upload up to `max_frames` stored frames, oldest first, deleting each once sent.

    An uploader error stops the batch and propagates; frames already sent stay deleted.
    """
    sent = 0
    for item in store.take(max_frames):
        try:
            jpeg, sidecar = await asyncio.to_thread(item.read)
        except FileNotFoundError:
            continue  # evicted since `take`
        await uploader.upload(item, jpeg, sidecar)
        await asyncio.to_thread(store.mark_uploaded, [item.id])
        sent += 1
    return sent
