"""The perception pipeline on a real ultralytics-exported model and a real video file.

A danger zone covering the frame and a stop rule on every class of the tiny model:
the rule's stop condition must reach the real safety supervisor within one frame
period of the detection.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.perception.camera import Camera, CameraEnded, CameraFrame
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.pipeline import (
    ActiveModel,
    FramePipeline,
    PerceptionSection,
    PipelineSinks,
    local_model,
    run_pipeline,
)
from edge_agent.perception.rules import ConditionChange
from edge_agent.safety import SafetyStore, SafetySupervisor
from protocol.models import Frame, FrameResult, StopSource, TelemetryPoint
from tests.edge_agent.ultralytics_model import CLASSES, draw_scene

FPS = 10.0
WHOLE_FRAME = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def perception(model: Path, **overrides: object) -> PerceptionSection:
    return PerceptionSection.model_validate(
        {
            "model": str(model),
            "detector": {"conf": 0.05},
            "zones": [{"name": "danger", "polygon": WHOLE_FRAME}],
            "rules": [
                {
                    "name": "shape-in-danger",
                    "classes": list(CLASSES),
                    "zone": "danger",
                    "min_conf": 0.05,
                    "action": "stop",
                    "clear_frames": 3,
                }
            ],
            "drift": {"window_frames": 5},
            **overrides,
        }
    )


def scene_video(path: Path, frames: int = 40) -> Path:
    """Frames of the shapes the tiny model was trained on, 10 fps, MJPG."""
    rng = np.random.default_rng(7)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (160, 160))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(draw_scene(rng, 160, 160, shapes=3)[0])
    writer.release()
    return path


@pytest.fixture(scope="module")
def model(tiny_yolo_onnx: Path) -> ActiveModel:
    cfg = perception(tiny_yolo_onnx)
    active = local_model(tiny_yolo_onnx, cfg.detector)
    active.detector.warm_up()
    return active


def test_a_frame_becomes_a_result_with_zones_a_rule_hit_and_a_snapshot(
    model: ActiveModel, tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    cfg = perception(tiny_yolo_onnx, snapshot_max_bytes=20_000)
    pipeline = FramePipeline(CameraSection(source="0"), cfg, lambda: model, tmp_path)
    rng = np.random.default_rng(3)
    image = draw_scene(rng, 480, 640, shapes=3)[0]
    frame = CameraFrame(image, 1, "default-1", datetime.now(UTC), "default")

    done = pipeline.process(frame)

    assert done is not None
    result = done.result
    assert result.objects, "the tiny model saw none of three shapes"
    assert result.model == model.ref
    assert result.zones["danger"] == list(range(len(result.objects)))
    assert [h.rule for h in done.hits] == ["shape-in-danger"]
    assert done.changes == (ConditionChange("rule:shape-in-danger", done.changes[0].reason),)
    assert done.changes[0].reason
    snapshot = done.snapshot
    assert snapshot is not None
    assert len(snapshot.jpeg) <= 20_000
    decoded = cv2.imdecode(np.frombuffer(snapshot.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape[:2] == (snapshot.height, snapshot.width) == (480, 640)


def test_no_model_means_no_result(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    pipeline = FramePipeline(
        CameraSection(source="0"), perception(tiny_yolo_onnx), lambda: None, tmp_path
    )
    frame = CameraFrame(np.zeros((64, 64, 3), np.uint8), 1, "f", datetime.now(UTC), "default")
    assert pipeline.process(frame) is None


@pytest.mark.timeout(60)
async def test_danger_zone_rule_stops_within_one_frame_period(
    model: ActiveModel, tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    cfg = perception(tiny_yolo_onnx)
    section = CameraSection(source=f"file:{scene_video(tmp_path / 'scene.avi')}", fps=FPS)
    supervisor = SafetySupervisor(SafetyStore(tmp_path / "safety.json"))
    pipeline = FramePipeline(section, cfg, lambda: model, tmp_path)
    results: list[FrameResult] = []
    points: list[TelemetryPoint] = []
    snapshots: list[Frame] = []
    stops: list[tuple[float, float]] = []  # (detection → stop, capture → stop) in ms
    captured: dict[str, float] = {}

    async def conditions(changes: list[ConditionChange], detected_at: float) -> None:
        for change in changes:
            supervisor.set_condition(change.name, change.reason, datetime.now(UTC))
        if supervisor.status.engaged and not stops:
            now = time.monotonic()
            stops.append(((now - detected_at) * 1000, (now - captured["first"]) * 1000))

    async def events(_events: object) -> None:
        return None

    async def snapshot(frame: Frame) -> None:
        snapshots.append(frame)

    enough = asyncio.Event()

    def result(frame: FrameResult) -> None:
        results.append(frame)
        if len(results) >= 12:
            enough.set()

    sinks = PipelineSinks(conditions, result, events, points.append, snapshot)
    async with Camera(section) as camera:
        original = pipeline.process

        def timed(frame: CameraFrame) -> object:
            captured.setdefault("first", time.monotonic())
            return original(frame)

        pipeline.process = timed  # type: ignore[method-assign,assignment]
        task = asyncio.create_task(run_pipeline(camera, pipeline, sinks))
        try:
            async with asyncio.timeout(20):
                await enough.wait()
        finally:
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert stops, "the danger-zone rule never stopped"
    detection_to_stop, processing_to_stop = stops[0]
    period_ms = 1000 / FPS
    print(
        f"\ndanger zone: detection -> supervisor stop {detection_to_stop:.2f} ms, "
        f"frame handed to the pipeline -> stop {processing_to_stop:.1f} ms "
        f"(frame period {period_ms:.0f} ms)"
    )
    assert detection_to_stop < period_ms
    assert supervisor.status.source == StopSource.RULE
    assert "rule:shape-in-danger" in supervisor.conditions
    assert len(results) >= 12
    assert snapshots, "no snapshot for the rule hit"
    assert any(p.metric == "drift.frames" for p in points), "no drift window closed"


class ListFeed:
    """A feed of `count` copies of one scene, then the end, as `run_pipeline` takes them."""

    def __init__(self, image: np.ndarray, count: int) -> None:
        self.image, self.count, self.taken = image, count, 0

    def take_frame(self, stop: threading.Event) -> CameraFrame | None:
        if stop.is_set():
            return None
        if self.taken == self.count:
            raise CameraEnded("no more")
        self.taken += 1
        return CameraFrame(self.image, self.taken, f"f{self.taken}", datetime.now(UTC), "default")


def collecting_sinks(results: list[FrameResult]) -> PipelineSinks:
    async def nothing(*_args: object) -> None:
        return None

    return PipelineSinks(nothing, results.append, nothing, lambda _p: None, nothing)


@pytest.mark.timeout(60)
async def test_the_frame_cycle_never_waits_for_the_event_loop(
    model: ActiveModel, tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    cfg = perception(tiny_yolo_onnx, send_empty_frames=True)
    pipeline = FramePipeline(CameraSection(source="0"), cfg, lambda: model, tmp_path)
    image = draw_scene(np.random.default_rng(3), 160, 160, shapes=2)[0]
    results: list[FrameResult] = []
    task = asyncio.create_task(
        run_pipeline(ListFeed(image, 40), pipeline, collecting_sinks(results))
    )
    await asyncio.sleep(0.05)
    before = pipeline.frames
    time.sleep(0.5)  # noqa: ASYNC251 - the loop is busy: the pipeline's thread goes on
    during = pipeline.frames - before
    await asyncio.wait_for(task, 30)

    assert during >= 3, f"only {during} frames processed while the loop was blocked"
    assert [r.frame_id for r in results] == [f"f{i}" for i in range(1, 41)], "all, in order"
    assert not [t for t in threading.enumerate() if t.name.startswith("perception-")]


async def test_a_failure_in_the_pipeline_thread_is_raised_and_cancelling_stops_it(
    model: ActiveModel, tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    cfg = perception(tiny_yolo_onnx)
    pipeline = FramePipeline(CameraSection(source="0"), cfg, lambda: model, tmp_path)

    class Broken:
        def take_frame(self, stop: threading.Event) -> CameraFrame | None:
            raise RuntimeError("the source broke")

    with pytest.raises(RuntimeError, match="the source broke"):
        await asyncio.wait_for(run_pipeline(Broken(), pipeline, collecting_sinks([])), 10)

    endless = ListFeed(np.zeros((64, 64, 3), np.uint8), 10**9)
    task = asyncio.create_task(run_pipeline(endless, pipeline, collecting_sinks([])))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    taken = endless.taken
    assert taken > 0
    assert not [t for t in threading.enumerate() if t.name.startswith("perception-")]
    await asyncio.sleep(0.1)
    assert endless.taken == taken, "the thread took frames after its task was cancelled"
