"""What the registry accepts as a model, and the sentence it refuses the rest with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest

from hub.registry.onnx_check import ModelCheckError, inspect_model, parse_imgsz, parse_names
from tests.edge_agent.model_rig import constant_model


def _with(path: Path, change: str) -> Path:
    model = onnx.load(str(path))
    if change == "two_inputs":
        extra = onnx.helper.make_tensor_value_info("more", onnx.TensorProto.FLOAT, (1, 3, 8, 8))
        model.graph.input.append(extra)
    elif change == "no_names":
        props = [p for p in model.metadata_props if p.key != "names"]
        del model.metadata_props[:]
        model.metadata_props.extend(props)
    onnx.save(model, str(path))
    return path


def test_an_ultralytics_style_detector_is_accepted(tmp_path: Path) -> None:
    info = inspect_model(constant_model(tmp_path / "m.onnx", names=("person", " cart "), imgsz=160))
    assert info.input_size == (160, 160)
    assert info.classes == ("person", "cart")


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda p: p.write_bytes(b"not a model") and p, "not a valid ONNX model"),
        (lambda p: _with(constant_model(p), "two_inputs"), "2 inputs"),
        (lambda p: _with(constant_model(p), "no_names"), "'names' is missing"),
        (lambda p: constant_model(p, output=np.zeros((1, 6), np.float32)), "rank 3"),
        (lambda p: constant_model(p, imgsz=8), "'imgsz' must be"),
    ],
    ids=["garbage", "two-inputs", "no-names", "rank-2-output", "tiny-input"],
)
def test_unusable_models_are_refused_with_the_reason(
    tmp_path: Path, make: Callable[[Path], Path], says: str
) -> None:
    path = make(tmp_path / "m.onnx")
    with pytest.raises(ModelCheckError, match=says):
        inspect_model(path)


def test_imgsz_must_agree_with_the_input_shape(tmp_path: Path) -> None:
    path = constant_model(tmp_path / "m.onnx", imgsz=160)
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "imgsz":
            prop.value = "[320, 320]"
    onnx.save(model, str(path))
    with pytest.raises(ModelCheckError, match="disagrees with the input shape"):
        inspect_model(path)


def test_metadata_parsing() -> None:
    assert parse_names("['a', 'b']") == ("a", "b")
    assert parse_imgsz("[160, 320]") == (160, 320)
    with pytest.raises(ModelCheckError, match="keys must be"):
        parse_names("{1: 'a'}")
    with pytest.raises(ModelCheckError, match="not a literal"):
        parse_names("__import__('os')")
