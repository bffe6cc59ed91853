"""The agent's perception: every configured camera through its pipeline, into the outbox.

`Perception.run()` starts each camera and its pipeline, batches frame results into
`detections` rows, and sends rule events (never-drop), snapshots (`frames`) and
drift points (through the telemetry batcher). Stop condition changes go to
`on_conditions` first, before anything else of the frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import orjson

from edge_agent.outbox import Outbox
from edge_agent.perception.camera import Camera, CameraError
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.capture import Captured, upload_pending
from edge_agent.perception.pipeline import (
    FramePipeline,
    ModelProvider,
    PerceptionSection,
    PipelineSinks,
    fit_jpeg,
    run_pipeline,
)
from edge_agent.perception.rules import ConditionChange
from edge_agent.telemetry import OutboxBatcher
from protocol import Channel, DetectionBatch, Event, FrameResult, TelemetryPoint, encode
from protocol.models import MAX_FRAME_JPEG_BYTES, Frame, FramePurpose

logger = logging.getLogger(__name__)

ConditionSink = Callable[[Sequence[ConditionChange]], Awaitable[None]]


class Perception:
    """Cameras, pipelines and the detections batcher of one agent."""

    def __init__(
        self,
        cameras: Sequence[CameraSection],
        cfg: PerceptionSection,
        outbox: Outbox,
        *,
        data_dir: Path,
        models: ModelProvider,
        on_conditions: ConditionSink,
        on_point: Callable[[TelemetryPoint], None],
        held: dict[str, str],
        notify: Callable[[], None] = lambda: None,
    ) -> None:
        self._cameras, self.cfg, self._outbox = list(cameras), cfg, outbox
        self._on_conditions, self._on_point, self._notify = on_conditions, on_point, notify
        self.pipelines = [FramePipeline(c, cfg, models, data_dir, held=held) for c in cameras]
        self.batcher = OutboxBatcher[FrameResult](
            outbox,
            Channel.DETECTIONS,
            lambda frames: DetectionBatch(frames=frames),
            max_items=cfg.batch_frames,
            max_delay_s=cfg.batch_delay_s,
            on_flush=notify,
        )
        self.stop_latencies_ms: list[float] = []
        """Detection done → stop condition applied, per condition change (the last 100)."""
        self._background: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Run every camera's pipeline until cancelled; flush the last results on the way out."""
        if not self._cameras:
            return
        sinks = PipelineSinks(
            conditions=self._conditions,
            result=self.batcher.add,
            events=self._events,
            points=self._on_point,
            snapshot=self._snapshot,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.batcher.run(), name="detections-batcher")
                for section, pipeline in zip(self._cameras, self.pipelines, strict=True):
                    tg.create_task(
                        self._camera(section, pipeline, sinks), name=f"camera-{section.name}"
                    )
        finally:
            with contextlib.suppress(Exception):
                await self.batcher.flush()

    async def _camera(
        self, section: CameraSection, pipeline: FramePipeline, sinks: PipelineSinks
    ) -> None:
        async with Camera(section, on_event=self._event) as camera:
            await run_pipeline(camera, pipeline, sinks)

    async def _conditions(self, changes: Sequence[ConditionChange], detected_at: float) -> None:
        await self._on_conditions(changes)
        latency_ms = (time.monotonic() - detected_at) * 1000
        self.stop_latencies_ms = [*self.stop_latencies_ms[-99:], latency_ms]
        logger.info(
            "rule stop conditions %s applied %.1f ms after detection",
            ", ".join(f"{c.name}={'on' if c.reason else 'off'}" for c in changes),
            latency_ms,
        )

    async def _events(self, events: Sequence[Event]) -> None:
        await self._outbox.put_many([(Channel.EVENTS, encode(e)) for e in events])
        self._notify()

    def _event(self, event: Event) -> None:
        """A camera's `camera_lost` / `camera_restored` (called on the event loop)."""
        task = asyncio.create_task(self._events([event]))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def upload_captures(self, max_frames: int) -> int:
        """The `capture` command: queue up to `max_frames` captured frames (oldest first) for the
        hub, each as a `frames` JPEG plus its `detections` result under the same frame id;
        a frame leaves the capture store once the outbox holds it durably."""
        uploader = _OutboxUploader(self._outbox)
        sent = 0
        for pipeline in self.pipelines:
            if pipeline.capture is not None and sent < max_frames:
                sent += await upload_pending(pipeline.capture, uploader, max_frames - sent)
        if sent:
            self._notify()
        return sent

    async def _snapshot(self, frame: Frame) -> None:
        await self._outbox.put(Channel.FRAMES, encode(frame))
        self._notify()


class _OutboxUploader:
    """Captured frames travel the outbox like everything else (durable, re-sent, counted)."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def upload(self, item: Captured, jpeg: bytes, sidecar: bytes) -> None:
        result = FrameResult.model_validate(orjson.loads(sidecar)["result"])
        frame = await asyncio.to_thread(_frame_of, result, jpeg)
        await self._outbox.put_many(
            [
                (Channel.FRAMES, encode(frame)),
                (Channel.DETECTIONS, encode(DetectionBatch(frames=[result]))),
            ]
        )


def _frame_of(result: FrameResult, jpeg: bytes) -> Frame:
    """The wire frame of a captured JPEG, re-encoded smaller if it exceeds the frame cap."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CameraError(f"captured frame {result.frame_id} is not a readable JPEG")
    height, width = image.shape[:2]
    if len(jpeg) > MAX_FRAME_JPEG_BYTES:
        smaller = fit_jpeg(np.asarray(image, np.uint8), MAX_FRAME_JPEG_BYTES)
        if smaller is None:
            raise CameraError(
                f"captured frame {result.frame_id} cannot fit {MAX_FRAME_JPEG_BYTES} B"
            )
        jpeg = smaller
    return Frame(
        ts=result.ts,
        frame_id=result.frame_id,
        camera=result.camera,
        purpose=FramePurpose.CAPTURE,
        width=width,
        height=height,
        jpeg=jpeg,
    )
