"""Checking an uploaded model before the registry accepts it.

A model is accepted when it parses as ONNX (`onnx.checker` included), has exactly
one image input of shape `(1, 3, H, W)` with sane sides, one output of rank 3, and
the metadata an ultralytics export writes: `names` (a dict `{index: name}` or a
list) and `imgsz` (`[h, w]` or one side) agreeing with the input. Anything else is
refused with a sentence saying what is wrong. Blocking: run it in a worker thread.

Example:
    info = inspect_model(Path("detector.onnx"))
    info.input_size, info.classes   # ((640, 640), ('person', 'forklift'))
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.errors import HubError

MIN_SIDE, MAX_SIDE = 16, 8192
MAX_CLASSES = 1000
MAX_NAME = 128
_MAX_LITERAL = 200_000


class ModelCheckError(HubError):
    """The file is not a model the fleet can run; the message says why."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the registry learned from a model: input `(height, width)` and class names."""

    input_size: tuple[int, int]
    classes: tuple[str, ...]
    metadata: dict[str, str]


def inspect_model(path: Path) -> ModelInfo:
    """The model's input size and classes, or `ModelCheckError` saying why it is refused."""
    import onnx  # heavy: only when a model is pushed

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:  # onnx raises protobuf, checker and OS errors alike
        raise ModelCheckError(f"not a valid ONNX model: {str(exc)[:300]}") from exc
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ModelCheckError(f"the model has {len(inputs)} inputs; a detector has one image")
    shape = _shape(inputs[0])
    if len(shape) != 4 or shape[0] not in (1, None) or shape[1] != 3:
        raise ModelCheckError(f"the input shape is {_show(shape)}; it must be (1, 3, H, W)")
    if len(graph.output) != 1 or len(_shape(graph.output[0])) != 3:
        shapes = ", ".join(_show(_shape(o)) for o in graph.output)
        raise ModelCheckError(f"the outputs are [{shapes}]; a detector has one of rank 3")
    metadata = {p.key: p.value for p in model.metadata_props}
    classes = parse_names(metadata.get("names"))
    size = parse_imgsz(metadata.get("imgsz"))
    declared = (shape[2], shape[3])
    if any(d is not None and d != s for d, s in zip(declared, size, strict=True)):
        raise ModelCheckError(
            f"metadata 'imgsz' {list(size)} disagrees with the input shape {_show(shape)}"
        )
    return ModelInfo(input_size=size, classes=classes, metadata=metadata)


def parse_names(text: str | None) -> tuple[str, ...]:
    """Class names from the `names` metadata, cleaned as agents report them.

    Example:
        >>> parse_names("{0: 'person', 1: ' forklift '}")
        ('person', 'forklift')
    """
    if text is None:
        raise ModelCheckError("metadata 'names' is missing (the class names, as a dict)")
    value = _literal("names", text)
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelCheckError(f"metadata 'names' must be a non-empty dict, not {text[:80]!r}")
    if len(value) > MAX_CLASSES:
        raise ModelCheckError(f"metadata 'names' lists {len(value)} classes; at most {MAX_CLASSES}")
    if set(value) != set(range(len(value))):
        raise ModelCheckError(f"metadata 'names' keys must be 0..{len(value) - 1}")
    return tuple(_label(str(value[i]), i) for i in range(len(value)))


def parse_imgsz(text: str | None) -> tuple[int, int]:
    """The input `(height, width)` from the `imgsz` metadata.

    Example:
        >>> parse_imgsz("[160, 320]"), parse_imgsz("640")
        ((160, 320), (640, 640))
    """
    if text is None:
        raise ModelCheckError("metadata 'imgsz' is missing (the input size, [height, width])")
    value = _literal("imgsz", text)
    sides = [value, value] if isinstance(value, int) else value
    if (
        not isinstance(sides, list | tuple)
        or len(sides) != 2
        or not all(type(s) is int and MIN_SIDE <= s <= MAX_SIDE for s in sides)
    ):
        raise ModelCheckError(
            f"metadata 'imgsz' must be [height, width], each {MIN_SIDE}..{MAX_SIDE} pixels, "
            f"not {text[:80]!r}"
        )
    return sides[0], sides[1]


def _literal(key: str, text: str) -> Any:
    if len(text) > _MAX_LITERAL:
        raise ModelCheckError(f"metadata {key!r} is longer than {_MAX_LITERAL} characters")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ModelCheckError(f"metadata {key!r} is not a literal: {text[:80]!r}") from None


def _label(name: str, index: int) -> str:
    label = name.strip()[:MAX_NAME]
    return label or f"class_{index}"


def _shape(value_info: Any) -> tuple[int | None, ...]:
    dims = value_info.type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)


def _show(shape: tuple[int | None, ...]) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"
