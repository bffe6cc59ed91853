"""Agent detection pipeline frames/s against bare `session.run`, same model, frames, threads.

Numerator: frames/s of the agent's per-frame path (`FramePipeline.process` in a
worker thread per frame, then delivery: letterbox, inference, NMS, a zone and an
event rule, drift statistics), for the fastest of a sweep of onnxruntime thread
settings. Denominator: `session.run` frames/s on the same frames' preprocessed
tensors with the same threads. Target ≥ 0.85. The measurement itself is
`edge_agent.bench_detect`, which `edge-agent bench detect` runs on a device.

Example:
    result = run(model=Path("detector.onnx"), seconds=1.0)
    print(result.ratio, result.details["winner"])
"""

from __future__ import annotations

from pathlib import Path

from bench.report import BenchResult, Measure
from edge_agent import bench_detect
from edge_agent.perception.default_model import SHIPPED_MODEL, shipped_model

DEFAULT_MODEL = SHIPPED_MODEL
"""The detector shipped with the product."""
FRAME_SIZE = (480, 640)


def default_model() -> Path | None:
    """The shipped detector when this checkout has it."""
    return shipped_model()


def run(
    *,
    model: Path,
    seconds: float = 2.0,
    rounds: int = bench_detect.ROUNDS,
    progress: bench_detect.Progress | None = None,
) -> BenchResult:
    """Sweep the thread settings on synthetic 640x480 scenes; the fastest one is the ratio.

    Raises `bench_detect.BenchError` or `ModelError` when the model cannot be used.
    """
    frames = bench_detect.synthetic_frames(size=FRAME_SIZE)
    report = bench_detect.run(
        model, frames, None, seconds=seconds, rounds=rounds, progress=progress
    )
    best = report.best
    return BenchResult(
        name="detect",
        numerator=Measure(
            round(best.pipeline_fps, 2),
            "frames/s",
            f"agent pipeline (FramePipeline.process in a worker thread), {best.label}",
        ),
        denominator=Measure(
            round(best.raw_fps, 2), "frames/s", f"bare session.run, same tensors, {best.label}"
        ),
        target=bench_detect.TARGET,
        details={
            "winner": _threads(best),
            "settings": [_row(r) for r in report.results],
            "stages_ms": best.to_json()["stages_ms"],
            "model": str(report.model),
            "model_input": list(report.input_size),
            "frame_size": report.frames.sizes,
            "frames": len(report.frames.images),
            "seconds_per_side": seconds,
            "rounds": rounds,
        },
    )


def _threads(result: bench_detect.SettingResult) -> dict[str, object]:
    s = result.setting
    return {
        "label": result.label,
        "intra_op_threads": s.intra_op_threads,
        "inter_op_threads": s.inter_op_threads,
        "allow_spinning": s.allow_spinning,
    }


def _row(result: bench_detect.SettingResult) -> dict[str, object]:
    return _threads(result) | {
        "raw_fps": round(result.raw_fps, 2),
        "pipeline_fps": round(result.pipeline_fps, 2),
        "ratio": round(result.ratio, 4),
    }
