"""`edge-agent bench detect` and `outpost bench detect` on the tiny ultralytics model.

Runs are short and assert what is printed, not the target: the machine is shared
and noisy, so the ratio itself is no test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from bench import detect as bench_detect_module
from edge_agent.bench_detect import StageStats, ThreadSetting, thread_settings
from edge_agent.cli import app as agent_app
from edge_agent.perception.detector import DetectorOptions
from outpost.cli import app as outpost_app
from tests.edge_agent.ultralytics_model import draw_scene

EDGE_AGENT = str(Path(sys.executable).parent / "edge-agent")
SHORT = ["--seconds", "0.2", "--rounds", "1"]
STAGES = {"preprocess", "infer", "postprocess", "rules_drift_rest", "handoff"}
runner = CliRunner()


def scene_video(path: Path, frames: int = 12) -> Path:
    """A 320x240 MJPG clip of the shapes the tiny model was trained on."""
    rng = np.random.default_rng(5)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (320, 240))
    assert writer.isOpened()
    for _ in range(frames):
        writer.write(draw_scene(rng, 240, 320, shapes=3)[0])
    writer.release()
    return path


def agent_config(tmp_path: Path, model: Path, video: Path) -> Path:
    config = tmp_path / "agent.toml"
    config.write_text(
        f'[device]\nid = "bench-1"\ndata_dir = "{tmp_path / "data"}"\n\n'
        f'[[cameras]]\nname = "front"\nsource = "file:{video}"\nfps = 5\n\n'
        f'[perception]\nmodel = "{model}"\n\n'
        "[perception.detector]\nintra_op_threads = 1\n\n"
        '[[perception.zones]]\nname = "danger"\ncamera = "front"\n'
        "polygon = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]\n\n"
        '[[perception.rules]]\nname = "box-in-danger"\nclasses = ["red_box"]\n'
        'zone = "danger"\naction = "stop"\n',
        encoding="utf-8",
    )
    return config


def assert_setting_rows(rows: list[dict[str, Any]]) -> None:
    labels = [row["label"] for row in rows]
    assert labels[0] == "intra 1"
    assert len(set(labels)) == len(labels)
    assert {"intra 2, spin on", "intra 2, spin off"} <= set(labels)
    for row in rows:
        assert row["raw_fps"] > 0
        assert row["pipeline_fps"] > 0
        assert row["ratio"] == pytest.approx(row["pipeline_fps"] / row["raw_fps"], rel=0.01)


def test_outpost_bench_detect_prints_the_ratio_and_which_threads_won(
    tiny_yolo_onnx: Path,
) -> None:
    args = ["bench", "detect", "--json", "--model", str(tiny_yolo_onnx), *SHORT]
    result = runner.invoke(outpost_app, args)

    assert result.exit_code in (0, 1), result.output
    data = json.loads(result.stdout)  # one object, no progress bar in --json mode
    assert data["name"] == "detect"
    assert data["target"] == ">= 0.85"
    assert result.exit_code == (0 if data["passed"] else 1)
    assert data["numerator"]["unit"] == data["denominator"]["unit"] == "frames/s"
    assert data["numerator"]["value"] > 0
    assert data["denominator"]["value"] > 0
    details = data["details"]
    rows = details["settings"]
    assert_setting_rows(rows)
    winner = max(rows, key=lambda row: row["pipeline_fps"])
    assert details["winner"]["label"] == winner["label"]
    assert winner["label"] in data["numerator"]["what"]
    assert data["numerator"]["value"] == winner["pipeline_fps"]
    assert data["denominator"]["value"] == winner["raw_fps"]
    assert details["stages_ms"].keys() == STAGES
    assert details["stages_ms"]["infer"]["mean"] > 0
    assert details["model_input"] == [160, 160]
    assert details["frame_size"] == ["640x480"]


def test_outpost_bench_detect_without_a_model_says_what_it_needs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "models" / "outpost-sim-detector" / "model.onnx"
    monkeypatch.setattr(bench_detect_module, "DEFAULT_MODEL", missing)
    monkeypatch.setattr(bench_detect_module, "default_model", lambda: None)
    result = runner.invoke(outpost_app, ["bench", "detect", "--json"])

    assert result.exit_code == 2
    assert "--model" in result.output
    assert "outpost-sim-detector/model.onnx" in result.output
    assert result.stdout == ""


def test_edge_agent_bench_detect_json_measures_the_configured_camera_model_and_threads(
    tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    config = agent_config(tmp_path, tiny_yolo_onnx, scene_video(tmp_path / "clip.avi"))
    out = subprocess.run(
        [EDGE_AGENT, "bench", "detect", "--config", str(config), "--json", *SHORT],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )

    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["frames"]["source"].startswith("camera front")
    assert data["frames"]["count"] == 12
    assert data["frames"]["sizes"] == ["320x240"]
    assert data["model"]["input_size"] == [160, 160]
    assert data["model"]["classes"] == 3
    rows = data["settings"]
    assert_setting_rows(rows)
    assert [row["label"] for row in rows if row["configured"]] == ["intra 1"]
    best = max(rows, key=lambda row: row["pipeline_fps"])
    assert data["best"]["label"] == best["label"]
    assert data["ratio"] == pytest.approx(best["ratio"], abs=1e-3)
    assert data["best"]["stages_ms"].keys() == STAGES
    assert f"intra_op_threads = {best['intra_op_threads']}" in data["config"]
    assert not (tmp_path / "data" / "capture").exists()  # the bench writes nothing of the agent's


def test_edge_agent_bench_detect_shows_a_table_the_stages_and_the_keys_to_set(
    tiny_yolo_onnx: Path, tmp_path: Path
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(2)
    for i in range(3):
        cv2.imwrite(str(frames / f"{i}.png"), draw_scene(rng, 480, 640, shapes=2)[0])
    args = ["bench", "detect", "--model", str(tiny_yolo_onnx), "--frames", str(frames), *SHORT]
    result = runner.invoke(agent_app, args)

    assert result.exit_code == 0, result.output
    text = result.output
    assert "3 frames from" in text
    assert "frames/s per onnxruntime thread setting" in text
    assert "intra 2, spin off" in text
    assert "█" in text  # the bar of each setting's frames/s
    assert "inference (session.run)" in text
    assert "taking the next frame" in text
    assert "fastest: intra" in text
    assert "[perception.detector]" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "/nonexistent/model.onnx"], "cannot read the model"),
        (["--frames", "/nonexistent/frames"], "no such file or folder"),
    ],
)
def test_edge_agent_bench_detect_refuses_what_it_cannot_read(
    tiny_yolo_onnx: Path, args: list[str], message: str
) -> None:
    base = ["bench", "detect", "--model", str(tiny_yolo_onnx)]
    result = runner.invoke(agent_app, [*base, *args])

    assert result.exit_code == 2
    assert message in result.output


def test_edge_agent_bench_detect_without_a_model_names_the_config_key(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "bench-1"\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    result = runner.invoke(agent_app, ["bench", "detect", "--config", str(config)])

    assert result.exit_code == 2
    assert "--model" in result.output
    assert "[perception] model" in result.output


def test_the_sweep_adds_the_configured_threads_once() -> None:
    configured = DetectorOptions(intra_op_threads=3, allow_spinning=False)
    labels = [s.label for s in thread_settings(configured, cpus=2)]
    assert labels == ["intra 1", "intra 2, spin on", "intra 2, spin off", "intra 3, spin off"]
    already = DetectorOptions(intra_op_threads=1, allow_spinning=True)
    assert ThreadSetting.of(already) == ThreadSetting(1)  # spinning means nothing with 1
    assert len(thread_settings(already, cpus=2)) == 3


def test_stage_stats_mean_and_p95() -> None:
    stats = StageStats.of([float(i) for i in range(1, 101)])
    assert (stats.mean_ms, stats.p95_ms) == (50.5, 95.0)
    assert StageStats.of([]) == StageStats(0.0, 0.0)
