"""One camera's perception pipeline: frame → detector → rules → results, off the event loop.

`FramePipeline.process(frame)` is the synchronous core, run in a thread of the
pipeline's own that takes each frame from the camera itself (the camera hands over
only its newest frame, so a slow model drops frames, never queues them): detect with
whatever model is active *now* (a model swap takes effect between two frames),
evaluate the zones and rules, count drift statistics, offer the frame to the
retraining capture, and draw a snapshot when a rule fired.

`detect_frame` is the detection step alone (the active model's detector, objects capped
as a frame result holds them); the pipeline calls it for every frame, and the local
detect API (`detect_api.py`) for every request, so both report the same boxes.

`run_pipeline` runs that thread, and is the async side: for each processed frame, in
order, it first hands stop condition changes to the safety supervisor (the stop path
never waits behind the rest), then queues the rule events, the frame result, the drift
points and the snapshot for the outbox. The frame cycle never waits for the event loop.

Example:
    pipeline = FramePipeline(camera_section, perception_section, models.active, data_dir)
    await run_pipeline(camera, pipeline, sinks)
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Protocol

import cv2
import numpy as np
from pydantic import Field

from edge_agent.perception.camera import CameraEnded, CameraFrame
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.camera_sources import Image
from edge_agent.perception.capture import CaptureSection, CaptureStore
from edge_agent.perception.detector import Detections, Detector, DetectorOptions
from edge_agent.perception.drift import DriftSection, DriftWindow
from edge_agent.perception.rules import (
    ConditionChange,
    PerceptionRules,
    RuleEngine,
    RuleHit,
    unknown_classes,
)
from edge_agent.sections import PositiveSeconds
from protocol import Event, TelemetryPoint
from protocol.models import (
    MAX_FRAME_JPEG_BYTES,
    MAX_OBJECTS_PER_FRAME,
    Frame,
    FrameResult,
    ModelRef,
)

logger = logging.getLogger(__name__)


class PerceptionSection(PerceptionRules):
    """`[perception]`: the detector, zones and rules, drift windows, capture, batching."""

    model: Path | None = None
    """A local ONNX model to run when no model was activated from the hub (field use)."""
    default_model: bool = True
    """With cameras and no `model`: run the detector Outpost ships (see `default_model.py`)."""
    detector: DetectorOptions = DetectorOptions()
    drift: DriftSection = DriftSection()
    capture: CaptureSection = CaptureSection()
    batch_frames: Annotated[int, Field(ge=1, le=500)] = 50
    """Frame results per `detections` message."""
    batch_delay_s: PositiveSeconds = 1.0
    """The longest a frame result waits for its batch."""
    send_empty_frames: bool = False
    """Also send frames with nothing detected (the hub then sees every processed frame)."""
    snapshot_width: Annotated[int, Field(ge=64, le=4096)] = 640
    """Snapshots of rule hits are scaled to this width."""
    snapshot_max_bytes: Annotated[int, Field(ge=10_000, le=MAX_FRAME_JPEG_BYTES)] = 200_000
    """JPEG quality is lowered until a snapshot fits."""


@dataclass(frozen=True)
class ActiveModel:
    """The detector serving now and how results name it."""

    detector: Detector
    ref: ModelRef
    baseline: dict[str, list[float]] | None = None


ModelProvider = Callable[[], ActiveModel | None]


@dataclass(frozen=True)
class Processed:
    """What one frame produced."""

    frame: CameraFrame
    result: FrameResult
    hits: tuple[RuleHit, ...]
    changes: tuple[ConditionChange, ...]
    drift: list[TelemetryPoint]
    snapshot: Frame | None
    detected_at: float
    """`time.monotonic()` when detection and rules were done for this frame."""


def local_model(path: Path, options: DetectorOptions) -> ActiveModel:
    """A model file configured by hand: named and versioned by its metadata (`outpost
    train` writes both), else after the file and its hash."""
    detector = Detector(path, options)
    sha, meta = detector.info.sha256, detector.info.metadata
    name, version = meta.get("name", "").strip(), meta.get("version", "").strip()
    if not (0 < len(name) <= 128 and 0 < len(version) <= 128):
        name, version = path.stem[:64] or "model", sha[:12]
    return ActiveModel(detector, ModelRef(name=name, version=version, sha256=sha))


def detect_frame(active: ActiveModel, image: Image) -> Detections:
    """The objects in one BGR frame as a frame result reports them (at most
    `MAX_OBJECTS_PER_FRAME`, best first), with the stage timings. Blocks.

    The one detection step of the agent: the camera pipeline and the detect API both call
    it, so the same image gives the same boxes through either.
    """
    found = active.detector.detect(image)
    if len(found.objects) <= MAX_OBJECTS_PER_FRAME:
        return found
    return dataclasses.replace(found, objects=found.objects[:MAX_OBJECTS_PER_FRAME])


class FramePipeline:
    """One camera's synchronous per-frame work (call `process` from one thread at a time)."""

    def __init__(
        self,
        camera: CameraSection,
        cfg: PerceptionSection,
        models: ModelProvider,
        data_dir: Path,
        *,
        held: dict[str, str] | None = None,
    ) -> None:
        self.camera, self.cfg, self._models = camera.name, cfg, models
        self.rules = RuleEngine(cfg, camera=camera.name, held=held)
        self.capture = (
            CaptureStore.from_section(cfg.capture, data_dir) if cfg.capture.enabled else None
        )
        self._drift: DriftWindow | None = None
        self._drift_model: ModelRef | None = None
        self.frames = 0

    def process(self, frame: CameraFrame) -> Processed | None:
        """Detect, evaluate, count; None when no model is active."""
        active = self._models()
        if active is None:
            return None
        found = detect_frame(active, frame.image)
        objects = found.objects
        evaluation = self.rules.evaluate(frame.ts, objects)
        detected_at = time.monotonic()
        result = FrameResult(
            ts=frame.ts,
            frame_id=frame.frame_id,
            camera=self.camera,
            model=active.ref,
            objects=objects,
            latency_ms=round(found.latency_ms, 3),
            zones=evaluation.zones,
        )
        self.frames += 1
        drift = (
            self._drift_window(active).add(frame.ts, objects, frame.image)
            if self.cfg.drift.enabled
            else []
        )
        if self.capture is not None:
            self.capture.offer(result, frame.image)
        snapshot = self._snapshot(frame, result, evaluation.hits) if evaluation.hits else None
        return Processed(
            frame, result, evaluation.hits, evaluation.changes, drift, snapshot, detected_at
        )

    def _drift_window(self, active: ActiveModel) -> DriftWindow:
        if self._drift is None or self._drift_model != active.ref:
            classes = active.detector.info.classes
            missing = unknown_classes(self.cfg, classes)
            if missing:
                logger.warning(
                    "camera %s: rules name classes model %s %s lacks: %s",
                    self.camera, active.ref.name, active.ref.version, missing,
                )  # fmt: skip
            self._drift = DriftWindow(
                self.cfg.drift,
                classes,
                tags={"camera": self.camera, "model": active.ref.name[:64]},
                baseline=active.baseline,
            )
            self._drift_model = active.ref
        return self._drift

    def _snapshot(
        self, frame: CameraFrame, result: FrameResult, hits: Sequence[RuleHit]
    ) -> Frame | None:
        image = annotate(frame.image, result, {h.rule for h in hits})
        scale = min(1.0, self.cfg.snapshot_width / image.shape[1])
        if scale < 1.0:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), np.uint8)
        jpeg = fit_jpeg(image, self.cfg.snapshot_max_bytes)
        if jpeg is None:
            return None
        return Frame(
            ts=frame.ts,
            frame_id=frame.frame_id,
            camera=self.camera,
            width=image.shape[1],
            height=image.shape[0],
            jpeg=jpeg,
        )


def annotate(image: Image, result: FrameResult, rules: set[str]) -> Image:
    """A copy of the frame with every box, its class and confidence, and the rules that fired."""
    out = image.copy()
    h, w = out.shape[:2]
    in_zone = {i for members in result.zones.values() for i in members}
    for i, obj in enumerate(result.objects):
        p1 = (round(obj.box.x1 * w), round(obj.box.y1 * h))
        p2 = (round(obj.box.x2 * w), round(obj.box.y2 * h))
        colour = (0, 0, 255) if i in in_zone else (0, 200, 0)
        cv2.rectangle(out, p1, p2, colour, 2)
        label = f"{obj.cls} {obj.conf:.2f}"
        cv2.putText(
            out, label, (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1
        )
    banner = "rule: " + ", ".join(sorted(rules))
    cv2.putText(out, banner, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 255), 2)
    return out


def fit_jpeg(image: Image, max_bytes: int) -> bytes | None:
    """The best-quality JPEG of the image under `max_bytes` (quality 85 down to 25)."""
    for quality in (85, 70, 55, 40, 25):
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and encoded.nbytes <= max_bytes:
            return encoded.tobytes()
    return None


@dataclass
class PipelineSinks:
    """Where the pipeline's output goes (the agent wires these to the supervisor and outbox)."""

    conditions: Callable[[Sequence[ConditionChange], float], Awaitable[None]]
    """Stop condition changes, with the `detected_at` of their frame: first, always."""
    result: Callable[[FrameResult], None]
    events: Callable[[Sequence[Event]], Awaitable[None]]
    points: Callable[[TelemetryPoint], None]
    snapshot: Callable[[Frame], Awaitable[None]]


class FrameFeed(Protocol):
    """Where a pipeline's worker thread takes its frames: `Camera.take_frame`."""

    def take_frame(self, stop: threading.Event) -> CameraFrame | None:
        """The next frame (blocks); None once `stop` is set; `CameraEnded` when no more."""
        ...


async def run_pipeline(feed: FrameFeed, pipeline: FramePipeline, sinks: PipelineSinks) -> None:
    """Process the feed's frames until it ends or the task is cancelled.

    One thread of its own takes each frame and processes it, so the per-frame cycle
    never waits for the event loop; the loop delivers what it processed, in order.
    """
    loop = asyncio.get_running_loop()
    results: asyncio.Queue[Processed | BaseException | None] = asyncio.Queue()
    stop = threading.Event()

    def post(item: Processed | BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(results.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is left to deliver to
            stop.set()

    worker = threading.Thread(
        target=_perceive, args=(feed, pipeline, stop, post), name=f"perception-{pipeline.camera}"
    )
    worker.start()
    try:
        while (item := await results.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            await deliver(item, pipeline.cfg, sinks)
        logger.info("camera %s ended", pipeline.camera)
    finally:
        stop.set()
        # At most one frame's processing: the thread looks at `stop` between frames.
        await asyncio.shield(asyncio.to_thread(worker.join))


def _perceive(
    feed: FrameFeed,
    pipeline: FramePipeline,
    stop: threading.Event,
    post: Callable[[Processed | BaseException | None], None],
) -> None:
    """(worker thread) Take, process and post frames until `stop`; None when the feed ends."""
    idle_logged = False
    try:
        while (frame := feed.take_frame(stop)) is not None:
            processed = pipeline.process(frame)
            if processed is None:
                if not idle_logged:
                    logger.warning(
                        "camera %s: no model is active; frames are not processed", pipeline.camera
                    )
                    idle_logged = True
                continue
            idle_logged = False
            post(processed)
    except CameraEnded:
        post(None)
    except Exception as exc:
        post(exc)


async def deliver(processed: Processed, cfg: PerceptionSection, sinks: PipelineSinks) -> None:
    """Hand one processed frame's output on: the stop path first."""
    if processed.changes:
        await sinks.conditions(processed.changes, processed.detected_at)
    if processed.hits:
        await sinks.events([hit.event() for hit in processed.hits])
    if processed.result.objects or cfg.send_empty_frames:
        sinks.result(processed.result)
    for point in processed.drift:
        sinks.points(point)
    if processed.snapshot is not None:
        await sinks.snapshot(processed.snapshot)
