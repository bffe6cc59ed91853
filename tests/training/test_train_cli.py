"""`outpost train` refuses what it cannot do with one clear message and exit status 2,
before any training starts and without leaving an output folder behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from outpost.cli import app
from tests.training.synthetic import write_shapes_dataset
from training.train import TrainRequestError, resolve_device, resolve_model
from training.ultralytics_env import import_ultralytics

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _ultralytics(tmp_path_factory: pytest.TempPathFactory) -> None:
    # Imported here, not first inside CliRunner: its log handler would keep the runner's
    # captured stream, closed once the command returns.
    import_ultralytics(tmp_path_factory.mktemp("ultralytics-settings"))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_shapes_dataset(tmp_path_factory.mktemp("shapes"), train=2, val=1)


def refused(data: Path, out: Path, *extra: str) -> str:
    args = ["train", "--data", str(data), "--out", str(out), "--device", "cpu", *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert not out.exists()
    return result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "yolov9000n.yaml"], "not a local file nor a model yaml shipped"),
        (["--model", "yolov8n.pt"], "no such file (downloads are off"),
        (["--model", "resnet50"], "give a model yaml"),
        (["--arg", "lr0"], "expected KEY=VALUE"),
        (["--arg", "learning_rate=0.1"], "not an Ultralytics training argument"),
        (["--arg", "data=other.yaml"], "set by outpost itself"),
        (["--version", "bad version!"], "--version 'bad version!'"),
        (["--device", "tpu"], "--device must be auto, cpu or cuda"),
    ],
)
def test_bad_requests_exit_2(data: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    assert message in refused(data, tmp_path / "out", *extra)


def test_a_bad_data_yaml_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "data.yaml"
    bad.write_text("names: [a]\n")
    assert "key 'train' is missing" in refused(bad, tmp_path / "out")
    assert "no such file" in refused(tmp_path / "missing.yaml", tmp_path / "out")


def test_cuda_without_a_gpu_exits_2(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    stderr = refused(data, tmp_path / "out", "--device", "cuda")
    assert "no CUDA device" in stderr


def test_auto_picks_cuda_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: "NVIDIA H100")
    assert resolve_device("auto") == ("cuda:0", "NVIDIA H100")
    assert resolve_device("cuda") == ("cuda:0", "NVIDIA H100")
    assert resolve_device("cpu")[0] == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto")[0] == "cpu"


def test_packaged_model_yamls_and_local_files_resolve(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.find_spec("ultralytics")
    assert spec is not None
    assert spec.origin is not None
    root = Path(spec.origin).parent
    assert resolve_model("yolov8n.yaml", root) == "yolov8n.yaml"
    assert resolve_model("yolo11s.yaml", root) == "yolo11s.yaml"
    weights = tmp_path / "mine.pt"
    weights.write_bytes(b"")
    assert resolve_model(str(weights), root) == str(weights.resolve())
    with pytest.raises(TrainRequestError):
        resolve_model("yolov8n.onnx", root)


def test_an_existing_model_is_not_overwritten(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"x")
    result = runner.invoke(app, ["train", "--data", str(data), "--out", str(out)])
    assert result.exit_code == 2
    assert "already holds a model" in result.stderr
