"""ONNX export through Ultralytics, with outpost's `name` and `version` in the metadata.

Ultralytics writes `names`, `imgsz`, `stride`, `task` and its own `version`; the latter
moves to `ultralytics_version` and `version` becomes the model's version.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from training.card import OnnxInfo
from training.dataset import file_sha256
from training.errors import TrainingError
from training.ultralytics_env import legacy_onnx_export


@dataclass(frozen=True)
class Exported:
    """The written file, its card entry and its input size `(height, width)`."""

    path: Path
    info: OnnxInfo
    input_size: tuple[int, int]


def export_onnx(model: Any, target: Path, *, imgsz: int, name: str, version: str) -> Exported:
    """Export `model` (an Ultralytics YOLO) to `target` with name and version metadata."""
    with legacy_onnx_export():
        exported = Path(
            model.export(format="onnx", imgsz=imgsz, simplify=False, dynamic=False, device="cpu")
        )
    proto = onnx.load(str(exported))
    metadata = {prop.key: prop.value for prop in proto.metadata_props}
    if "version" in metadata:
        metadata["ultralytics_version"] = metadata.pop("version")
    metadata.update(name=name, version=version)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(target))
    if exported != target:
        exported.unlink(missing_ok=True)
    opset = next((o.version for o in proto.opset_import if o.domain in {"", "ai.onnx"}), 0)
    info = OnnxInfo(
        file=target.name, sha256=file_sha256(target), size=target.stat().st_size, opset=opset
    )
    return Exported(target, info, _input_size(metadata.get("imgsz", "")))


def _input_size(text: str) -> tuple[int, int]:
    try:
        value = ast.literal_eval(text)
        height, width = (value, value) if isinstance(value, int) else value
        return int(height), int(width)
    except (ValueError, TypeError, SyntaxError) as exc:
        raise TrainingError(f"the ONNX export has no usable 'imgsz' metadata: {text!r}") from exc


__all__ = ["Exported", "export_onnx"]
