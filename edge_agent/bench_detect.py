"""How fast this device runs a detector: the agent's per-frame path against bare `session.run`.

For each onnxruntime thread setting of a sweep, on the same frames:

- raw: `session.run` frames/s on the frames' already preprocessed tensors, one call
  after the other on this thread: what the model alone can do with these threads;
- pipeline: frames/s of the agent's own loop, `run_pipeline`: its thread takes each
  frame and runs `FramePipeline.process` (letterbox, inference, NMS, zones and rules,
  drift statistics, capture, snapshots), and the event loop delivers the results to
  in-memory sinks; with per-stage means and p95.

Frames are decoded before timing starts (the agent decodes in the camera's own
thread); writing the results to the outbox is `outpost bench outbox`'s business.
Raw and pipeline alternate in `rounds` slices and each keeps its best slice, so a
noisy neighbour lowers neither side alone. The winner is the setting with the
highest pipeline frames/s; its ratio (pipeline over raw, same threads) is the
headline, with a target of 0.85.

Example:
    report = run(Path("detector.onnx"), synthetic_frames(), PerceptionSection(), seconds=1.0)
    print(report.best.label, report.best.pipeline_fps, report.ratio)
    print(report.config_snippet())  # the `[perception.detector]` threads that won
"""

from __future__ import annotations

import asyncio
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge_agent.errors import AgentError
from edge_agent.perception.camera import CameraEnded, CameraFrame
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.camera_sources import Image, as_bgr, make_source
from edge_agent.perception.detector import Detections, Detector, DetectorOptions
from edge_agent.perception.pipeline import (
    ActiveModel,
    FramePipeline,
    PerceptionSection,
    PipelineSinks,
    Processed,
    run_pipeline,
)
from edge_agent.perception.rules import RuleSection
from edge_agent.perception.zones import ZoneSection
from protocol.models import ModelRef

TARGET = 0.85
ROUNDS = 6
"""Slices per side and setting: short slices, alternating often, so that a neighbour's burst
of load lands on both sides alike and each side's best slice is a quiet one."""
STAGES = ("preprocess", "infer", "postprocess", "rules_drift_rest", "handoff")
"""Per-frame stages: the detector's three, the rest of `process`, taking the next frame."""
MAX_FRAMES = 32
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
Progress = Callable[[int, int, str], None]
"""Called with (steps done, steps in all, what runs next)."""


class BenchError(AgentError):
    """The bench cannot run: no model, or no frames; the message says what to pass."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class ThreadSetting:
    """One onnxruntime thread setting of the sweep."""

    intra_op_threads: int
    inter_op_threads: int = 1
    allow_spinning: bool = False

    @property
    def label(self) -> str:
        """`intra 2, spin off`; `intra auto` for 0 (onnxruntime's default)."""
        intra = "auto" if self.intra_op_threads == 0 else str(self.intra_op_threads)
        inter = f", inter {self.inter_op_threads}" if self.inter_op_threads != 1 else ""
        if self.intra_op_threads == 1:
            return f"intra 1{inter}"  # no intra-op pool: spinning changes nothing
        return f"intra {intra}{inter}, spin {'on' if self.allow_spinning else 'off'}"

    def options(self, base: DetectorOptions) -> DetectorOptions:
        """`base` (providers, thresholds) with these threads."""
        return base.model_copy(
            update={
                "intra_op_threads": self.intra_op_threads,
                "inter_op_threads": self.inter_op_threads,
                "allow_spinning": self.allow_spinning,
            }
        )

    @classmethod
    def of(cls, options: DetectorOptions) -> ThreadSetting:
        """The thread setting of `options`."""
        spinning = options.allow_spinning and options.intra_op_threads != 1
        return cls(options.intra_op_threads, options.inter_op_threads, spinning)


def thread_settings(configured: DetectorOptions, cpus: int | None = None) -> list[ThreadSetting]:
    """The sweep: intra-op 1, 2 and every CPU, spinning on and off, then the configured one.

    >>> [s.label for s in thread_settings(DetectorOptions(), cpus=4)]
    ['intra 1', 'intra 2, spin on', 'intra 2, spin off', 'intra 4, spin on', \
'intra 4, spin off', 'intra auto, spin on']
    """
    cpus = cpus or os.cpu_count() or 1
    sweep = [ThreadSetting(1)]
    for intra in sorted({2, cpus} - {1}):
        sweep += [ThreadSetting(intra, 1, True), ThreadSetting(intra, 1, False)]
    mine = ThreadSetting.of(configured)
    return sweep if mine in sweep else [*sweep, mine]


@dataclass(frozen=True, slots=True)
class StageStats:
    """Mean and 95th percentile of one stage, in milliseconds."""

    mean_ms: float
    p95_ms: float

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> StageStats:
        """Stats of the samples (zeros when there are none)."""
        if not samples_ms:
            return cls(0.0, 0.0)
        ordered = sorted(samples_ms)
        p95 = ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]
        return cls(round(sum(ordered) / len(ordered), 3), round(p95, 3))


@dataclass(frozen=True, slots=True)
class SettingResult:
    """Both sides of one thread setting."""

    setting: ThreadSetting
    raw_fps: float
    pipeline_fps: float
    stages: dict[str, StageStats]
    configured: bool = False

    @property
    def label(self) -> str:
        """The setting's label."""
        return self.setting.label

    @property
    def ratio(self) -> float:
        """Pipeline over raw frames/s."""
        return self.pipeline_fps / self.raw_fps if self.raw_fps else 0.0

    def to_json(self) -> dict[str, Any]:
        """One row of the table."""
        return {
            "label": self.label,
            "intra_op_threads": self.setting.intra_op_threads,
            "inter_op_threads": self.setting.inter_op_threads,
            "allow_spinning": self.setting.allow_spinning,
            "configured": self.configured,
            "raw_fps": round(self.raw_fps, 2),
            "pipeline_fps": round(self.pipeline_fps, 2),
            "ratio": round(self.ratio, 4),
            "stages_ms": {
                name: {"mean": s.mean_ms, "p95": s.p95_ms} for name, s in self.stages.items()
            },
        }


@dataclass(frozen=True)
class FrameSet:
    """The frames to measure on, and where they came from."""

    images: list[Image]
    source: str

    @property
    def sizes(self) -> list[str]:
        """Distinct `WIDTHxHEIGHT` of the frames, in order of appearance."""
        return list(dict.fromkeys(f"{i.shape[1]}x{i.shape[0]}" for i in self.images))


@dataclass(frozen=True)
class DetectReport:
    """The whole sweep on one model and one set of frames."""

    model: Path
    sha256: str
    input_size: tuple[int, int]
    classes: int
    frames: FrameSet
    seconds: float
    results: list[SettingResult] = field(default_factory=list)

    @property
    def best(self) -> SettingResult:
        """The setting with the highest pipeline frames/s."""
        return max(self.results, key=lambda r: r.pipeline_fps)

    @property
    def ratio(self) -> float:
        """The winner's pipeline over raw frames/s."""
        return self.best.ratio

    def config_snippet(self) -> str:
        """The `[perception.detector]` thread keys of the winner, ready to paste."""
        s = self.best.setting
        return (
            "[perception.detector]\n"
            f"intra_op_threads = {s.intra_op_threads}\n"
            f"inter_op_threads = {s.inter_op_threads}\n"
            f"allow_spinning = {str(s.allow_spinning).lower()}"
        )

    def to_json(self) -> dict[str, Any]:
        """The whole report as one JSON object."""
        return {
            "name": "detect",
            "ratio": round(self.ratio, 4),
            "target": f">= {TARGET}",
            "passed": self.ratio >= TARGET,
            "best": self.best.to_json(),
            "settings": [r.to_json() for r in self.results],
            "config": self.config_snippet(),
            "model": {
                "path": str(self.model),
                "sha256": self.sha256,
                "input_size": list(self.input_size),
                "classes": self.classes,
            },
            "frames": {
                "source": self.frames.source,
                "count": len(self.frames.images),
                "sizes": self.frames.sizes,
            },
            "seconds_per_side": self.seconds,
            "cpus": os.cpu_count(),
        }


# --- frames --------------------------------------------------------------------------------


def synthetic_frames(count: int = 8, size: tuple[int, int] = (480, 640), seed: int = 0) -> FrameSet:
    """`count` BGR frames of `size` (height, width): flat boxes and ellipses on noisy grey.

    >>> frames = synthetic_frames(2, (48, 64))
    >>> frames.source, frames.sizes, frames.images[0].dtype
    ('synthetic 64x48', ['64x48'], dtype('uint8'))
    """
    rng = np.random.default_rng(seed)
    height, width = size
    images = []
    for _ in range(count):
        image = rng.integers(90, 150, size=(height, width, 3), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            _draw_shape(image, rng)
        images.append(image)
    return FrameSet(images, f"synthetic {width}x{height}")


_PALETTE_BGR = ((40, 40, 220), (40, 200, 40), (220, 60, 40), (30, 200, 230), (200, 40, 200))


def _draw_shape(image: Image, rng: np.random.Generator) -> None:
    height, width = image.shape[:2]
    w = int(rng.integers(max(2, width // 6), max(3, width // 2)))
    h = int(rng.integers(max(2, height // 6), max(3, height // 2)))
    x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
    colour = _PALETTE_BGR[int(rng.integers(len(_PALETTE_BGR)))]
    if rng.random() < 0.5:
        cv2.rectangle(image, (x, y), (x + w - 1, y + h - 1), colour, thickness=-1)
    else:
        cv2.ellipse(image, (x + w // 2, y + h // 2), (w // 2, h // 2), 0, 0, 360, colour, -1)


def read_frames(path: Path, limit: int = MAX_FRAMES) -> FrameSet:
    """Up to `limit` frames from a folder of images or a video file."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = [as_bgr(i) for p in files[:limit] if (i := cv2.imread(str(p))) is not None]
    elif path.is_file():
        images = _video_frames(path, limit)
    else:
        raise BenchError(f"--frames {path}: no such file or folder")
    if not images:
        raise BenchError(f"--frames {path}: no readable image or video frame in it")
    return FrameSet(images, str(path))


def _video_frames(path: Path, limit: int) -> list[Image]:
    capture = cv2.VideoCapture(str(path))
    try:
        images: list[Image] = []
        while len(images) < limit:
            ok, image = capture.read()
            if not ok or image is None:
                break
            images.append(as_bgr(np.asarray(image)))
        return images
    finally:
        capture.release()


def camera_frames(section: CameraSection, seconds: float = 3.0, limit: int = 16) -> FrameSet:
    """Frames read from a configured camera for at most `seconds` (at most `limit`).

    A video file is read once, not looped: its frames are the set.
    """
    source = make_source(section.model_copy(update={"loop": False}))
    images: list[Image] = []
    try:
        source.open()
        deadline = time.monotonic() + seconds
        while len(images) < limit and time.monotonic() < deadline:
            image = source.read()
            if image is None:
                break
            images.append(image.copy())
    except AgentError as exc:
        raise BenchError(f"camera {section.name}: {exc}; pass --frames instead") from exc
    finally:
        source.close()
    if not images:
        raise BenchError(f"camera {section.name} gave no frame; pass --frames instead")
    return FrameSet(images, f"camera {section.name} ({section.display_source})")


# --- perception without a config ---------------------------------------------------------


def representative_perception(
    classes: Sequence[str], base: PerceptionSection | None = None
) -> PerceptionSection:
    """`base` with, when it has none, a zone over the lower half and an event rule on it.

    So that a bench without a config still pays for zones and rules, as a working agent does.
    """
    base = base or PerceptionSection()
    if base.zones or base.rules:
        return base
    zone = ZoneSection(name="bench", polygon=[(0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)])
    rule = RuleSection(name="bench", classes=list(classes[:64]), zone="bench", min_conf=0.25)
    return base.model_copy(update={"zones": [zone], "rules": [rule]})


# --- measuring ---------------------------------------------------------------------------


class _RecordingDetector(Detector):
    """A `Detector` that keeps each frame's stage timings for the report."""

    def __init__(self, path: Path, options: DetectorOptions) -> None:
        super().__init__(path, options)
        self.recorded: list[Detections] = []

    def detect(self, image: Image) -> Detections:
        found = super().detect(image)
        self.recorded.append(found)
        return found


@dataclass
class _Samples:
    """Per-frame timings of the pipeline side, in milliseconds."""

    process_ms: list[float] = field(default_factory=list)
    handoff_ms: list[float] = field(default_factory=list)


class _TimedPipeline(FramePipeline):
    """A `FramePipeline` that keeps how long each `process` took."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.process_s: list[float] = []

    def process(self, frame: CameraFrame) -> Processed | None:
        start = time.perf_counter()
        processed = super().process(frame)
        self.process_s.append(time.perf_counter() - start)
        return processed


class _Feed:
    """The bench's frames in turn, as a camera hands them to the pipeline's thread, for
    `seconds` (at least one frame); then the feed ends."""

    def __init__(self, images: Sequence[Image], camera: str, seconds: float) -> None:
        self._images, self._camera, self._seconds = images, camera, seconds
        self.taken: list[float] = []
        """`perf_counter()` at each take, and one more when the feed ended."""

    def take_frame(self, stop: threading.Event) -> CameraFrame | None:
        if stop.is_set():
            return None
        now = time.perf_counter()
        self.taken.append(now)
        if len(self.taken) > 1 and now - self.taken[0] >= self._seconds:
            raise CameraEnded("bench slice over")
        seq = len(self.taken)
        image = self._images[seq % len(self._images)]
        return CameraFrame(image, seq, f"{self._camera}-bench-{seq}", _now(), self._camera)


def _sinks() -> PipelineSinks:
    async def nothing(*_args: object) -> None:
        return None

    return PipelineSinks(
        conditions=nothing,
        result=lambda _r: None,
        events=nothing,
        points=lambda _p: None,
        snapshot=nothing,
    )


class _SettingBench:
    """Both sides of one thread setting, on one detector and one pipeline."""

    def __init__(
        self,
        model: Path,
        options: DetectorOptions,
        frames: Sequence[Image],
        perception: PerceptionSection,
        camera: CameraSection,
        data_dir: Path,
    ) -> None:
        self.detector = _RecordingDetector(model, options)
        sha = self.detector.info.sha256
        ref = ModelRef(name=model.stem[:64] or "model", version=sha[:12], sha256=sha)
        active = ActiveModel(self.detector, ref)
        self.pipeline = _TimedPipeline(camera, perception, lambda: active, data_dir)
        self.images = list(frames)
        self.tensors = [self.detector.preprocess(i)[0] for i in self.images]
        self.samples = _Samples()
        self._sinks = _sinks()

    def raw_slice(self, seconds: float) -> float:
        """`session.run` frames/s on the prepared tensors for `seconds`."""
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds or done == 0:
            self.detector.run_raw(self.tensors[done % len(self.tensors)])
            done += 1
        return done / elapsed

    async def pipeline_slice(self, seconds: float, *, record: bool = True) -> float:
        """Pipeline frames/s for `seconds`: `run_pipeline`, the agent's own loop, on a feed
        that hands over the next frame whenever the pipeline's thread asks."""
        feed = _Feed(self.images, self.pipeline.camera, seconds)
        timed = self.pipeline.process_s
        timed.clear()
        await run_pipeline(feed, self.pipeline, self._sinks)
        frames = len(feed.taken) - 1
        if record:
            cycles = [b - a for a, b in zip(feed.taken, feed.taken[1:], strict=False)]
            self.samples.process_ms += [t * 1000 for t in timed]
            self.samples.handoff_ms += [(c - t) * 1000 for c, t in zip(cycles, timed, strict=False)]
        return frames / (feed.taken[-1] - feed.taken[0])

    def stages(self) -> dict[str, StageStats]:
        """Mean and p95 of each stage over the recorded pipeline frames."""
        found = self.detector.recorded
        rest = [
            total - d.latency_ms for total, d in zip(self.samples.process_ms, found, strict=False)
        ]
        return {
            "preprocess": StageStats.of([d.preprocess_ms for d in found]),
            "infer": StageStats.of([d.infer_ms for d in found]),
            "postprocess": StageStats.of([d.postprocess_ms for d in found]),
            "rules_drift_rest": StageStats.of(rest),
            "handoff": StageStats.of(self.samples.handoff_ms),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def steps(settings: Sequence[ThreadSetting], rounds: int) -> int:
    """How many progress steps `run` reports: per setting, a warm-up and two per round."""
    return len(settings) * (1 + 2 * rounds)


def run(
    model: Path,
    frames: FrameSet,
    perception: PerceptionSection | None = None,
    *,
    camera: CameraSection | None = None,
    seconds: float = 2.0,
    rounds: int = ROUNDS,
    settings: Sequence[ThreadSetting] | None = None,
    progress: Progress | None = None,
) -> DetectReport:
    """Measure every thread setting on `frames`; `seconds` per side and setting.

    `perception` is the agent's `[perception]` (None: defaults, plus the zone and rule of
    `representative_perception`). Raises `BenchError` when there are no frames and
    `ModelError` when the model is unusable, before anything is timed.
    """
    if not frames.images:
        raise BenchError("no frames to measure on")
    probe = Detector(model, DetectorOptions(intra_op_threads=1)).info
    if perception is None:
        perception = representative_perception(probe.classes)
    settings = list(settings or thread_settings(perception.detector))
    camera = camera or CameraSection(name="default", source="0")
    configured = ThreadSetting.of(perception.detector)
    tick = _Ticker(steps(settings, rounds), progress)
    results: list[SettingResult] = []
    with tempfile.TemporaryDirectory(prefix="outpost-bench-detect-") as tmp:
        work = Path(tmp)
        cfg = _private_capture(perception, work)
        for setting in settings:
            tick(f"{setting.label}: loading, warming up")
            bench = _SettingBench(
                model, setting.options(perception.detector), frames.images, cfg, camera, work
            )
            results.append(_measure(bench, setting, seconds, rounds, tick, setting == configured))
            del bench  # its session and thread pool go before the next setting loads
    tick.finish()
    return DetectReport(
        model, probe.sha256, probe.input_size, len(probe.classes), frames, seconds, results
    )


def _measure(
    bench: _SettingBench,
    setting: ThreadSetting,
    seconds: float,
    rounds: int,
    tick: _Ticker,
    configured: bool,
) -> SettingResult:
    bench.detector.warm_up()
    with asyncio.Runner() as runner:
        bench.raw_slice(min(0.2, seconds / 4))
        runner.run(bench.pipeline_slice(min(0.2, seconds / 4), record=False))
        bench.detector.recorded.clear()
        raw = pipe = 0.0
        for n in range(rounds):
            tick(f"{setting.label}: raw session.run, round {n + 1}/{rounds}")
            raw = max(raw, bench.raw_slice(seconds / rounds))
            tick(f"{setting.label}: agent pipeline, round {n + 1}/{rounds}")
            pipe = max(pipe, runner.run(bench.pipeline_slice(seconds / rounds)))
    return SettingResult(setting, raw, pipe, bench.stages(), configured)


class _Ticker:
    """Counts steps for the progress callback."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

    def __call__(self, what: str) -> None:
        if self._progress is not None:
            self._progress(self.done, self.total, what)
        self.done += 1

    def finish(self) -> None:
        if self._progress is not None:
            self._progress(self.total, self.total, "done")


def _private_capture(perception: PerceptionSection, work: Path) -> PerceptionSection:
    """The same settings with retraining capture writing into `work`, not the device's data."""
    capture = perception.capture.model_copy(update={"dir": work / "capture"})
    return perception.model_copy(update={"capture": capture})
