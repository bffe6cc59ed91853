"""The ONNX object detector: a YOLO export (Ultralytics YOLOv8/YOLO11, or YOLOv5) run
with onnxruntime, with the pre- and postprocessing of Ultralytics' own predictor, so
the agent reports the boxes the ML engineer saw when the model was trained.

`detect` is synchronous and blocks for the inference; the agent calls it from a worker
thread, never on the event loop. One `Detector` may serve several threads at once: it
holds no per-call state, and `InferenceSession.run` is thread-safe.

    >>> detector = Detector(Path("models/default.onnx"), DetectorOptions())  # doctest: +SKIP
    >>> detector.warm_up()  # doctest: +SKIP
    >>> result = detector.detect(frame)  # BGR uint8, H x W x 3  # doctest: +SKIP
    >>> [(o.cls, round(o.conf, 2)) for o in result.objects]  # doctest: +SKIP
    [('person', 0.91)]

Class names come from the model's metadata. `DetectedObject.cls` is a `Name` (1 to 128
characters), so `class_label` maps a name that does not fit the same way every time:
surrounding whitespace is stripped, an empty name becomes `class_<index>`, and a longer
one keeps its first 128 characters.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal, Protocol

import cv2
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import Field, field_validator

from edge_agent.errors import AgentError
from edge_agent.perception.nms import batched_nms
from edge_agent.sections import Section
from protocol.models import MAX_OBJECTS_PER_FRAME, Box, DetectedObject

logger = logging.getLogger(__name__)

Layout = Literal["v8", "v5"]
Size = tuple[int, int]
Floats = npt.NDArray[np.float32]

PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_NAME_LENGTH = 128  # `protocol.models.Name`
MAX_NMS_CANDIDATES = 30_000  # Ultralytics' `max_nms`: the best this many enter NMS
MAX_CLASSES = 10_000
MAX_INPUT_SIDE = 16_384
_MAX_LITERAL = 1 << 20  # metadata values longer than this are refused before parsing
_PROVIDER = re.compile(r"^[A-Za-z][A-Za-z0-9]*ExecutionProvider$")
_ORT_ERRORS: tuple[type[Exception], ...] = (
    RuntimeError,
    ValueError,
    *(
        getattr(ort.capi.onnxruntime_pybind11_state, name)
        for name in (
            "Fail",
            "InvalidArgument",
            "InvalidProtobuf",
            "InvalidGraph",
            "NoSuchFile",
            "NoModel",
            "NotImplemented",
            "RuntimeException",
            "EPFail",
        )
        if hasattr(ort.capi.onnxruntime_pybind11_state, name)
    ),
)

Threads = Annotated[int, Field(ge=0, le=256)]


class ModelError(AgentError):
    """A model file the detector cannot use, or that misbehaved; the message says why."""


class DetectorOptions(Section):
    """Settings of the ONNX detector: onnxruntime session and postprocessing thresholds."""

    providers: Annotated[list[str], Field(min_length=1, max_length=8)] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        description="onnxruntime execution providers, most preferred first",
    )
    intra_op_threads: Threads = Field(0, description="threads inside one operator; 0: default")
    inter_op_threads: Threads = Field(1, description="threads across operators; 0: default")
    allow_spinning: bool = Field(
        True, description="idle intra-op threads spin (faster, but burns CPU other work needs)"
    )
    conf: float = Field(0.25, ge=0.0, lt=1.0, description="keep objects scoring above this")
    iou: float = Field(0.45, ge=0.0, le=1.0, description="NMS drops boxes overlapping above this")
    max_det: int = Field(300, ge=1, le=MAX_OBJECTS_PER_FRAME, description="objects per frame")
    agnostic: bool = Field(False, description="NMS across classes instead of within each")

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        bad = [name for name in value if not _PROVIDER.match(name)]
        if bad:
            raise ValueError(f"not an execution provider name: {bad} (e.g. CPUExecutionProvider)")
        if len(set(value)) != len(value):
            raise ValueError("each provider may be named once")
        return value


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the detector learned about its model; `classes` are the names it reports."""

    path: Path
    sha256: str
    input_size: Size  # (height, width)
    classes: tuple[str, ...]
    layout: Layout
    output_shape: tuple[int | None, ...]  # None where the export left a dimension dynamic
    metadata: Mapping[str, str]  # the model's custom metadata, as written by the exporter


@dataclass(frozen=True, slots=True)
class Detections:
    """The objects found in one frame, and the time each stage took."""

    objects: list[DetectedObject]
    preprocess_ms: float
    infer_ms: float
    postprocess_ms: float

    @property
    def latency_ms(self) -> float:
        """Time from frame to objects."""
        return self.preprocess_ms + self.infer_ms + self.postprocess_ms


@dataclass(frozen=True, slots=True)
class Letterbox:
    """Where a frame lands in the model input: its resized size and the padding before it."""

    frame: Size  # (height, width) of the original frame
    resized: Size  # (height, width) after scaling, before padding
    top: int
    bottom: int
    left: int
    right: int


@dataclass(frozen=True, slots=True)
class Candidates:
    """Scored boxes, `(x1, y1, x2, y2)` in model-input pixels, one class each."""

    boxes: Floats  # N x 4
    scores: Floats  # N
    class_ids: npt.NDArray[np.intp]  # N

    def take(self, index: npt.NDArray[np.intp]) -> Candidates:
        """The candidates at `index`, in that order."""
        return Candidates(self.boxes[index], self.scores[index], self.class_ids[index])


# --- metadata ------------------------------------------------------------------------------


def _literal(key: str, text: str) -> object:
    if len(text) > _MAX_LITERAL:
        raise ModelError(f"metadata {key!r} is longer than {_MAX_LITERAL} characters")
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ModelError(f"metadata {key!r} is not a Python literal: {text[:80]!r}") from exc


def parse_names(text: str) -> tuple[str, ...]:
    """Class names from the `names` metadata: a dict `{index: name}` or a list of names.

    >>> parse_names("{0: 'person', 1: 'car'}")
    ('person', 'car')
    >>> parse_names("['a', 'b']")
    ('a', 'b')
    """
    value = _literal("names", text)
    if isinstance(value, list | tuple):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ModelError(f"metadata 'names' must be a non-empty dict or list, not {text[:80]!r}")
    if len(value) > MAX_CLASSES:
        raise ModelError(f"metadata 'names' lists {len(value)} classes; at most {MAX_CLASSES}")
    if sorted(value, key=repr) != sorted(range(len(value)), key=repr):
        raise ModelError(f"metadata 'names' keys must be 0..{len(value) - 1}, not {text[:80]!r}")
    if not all(isinstance(name, str | int) for name in value.values()):
        raise ModelError(f"metadata 'names' values must be strings, not {text[:80]!r}")
    return tuple(str(value[i]) for i in range(len(value)))


def parse_imgsz(text: str) -> Size:
    """The input `(height, width)` from the `imgsz` metadata: `[h, w]` or one side.

    >>> parse_imgsz("[160, 320]"), parse_imgsz("640")
    ((160, 320), (640, 640))
    """
    value = _literal("imgsz", text)
    sides = [value, value] if isinstance(value, int) else value
    if (
        not isinstance(sides, list | tuple)
        or len(sides) != 2
        or not all(type(s) is int and 1 <= s <= MAX_INPUT_SIDE for s in sides)
    ):
        raise ModelError(f"metadata 'imgsz' must be [height, width] in pixels, not {text[:80]!r}")
    return sides[0], sides[1]


def class_label(name: str, index: int) -> str:
    """`name` as a wire `Name` (1 to 128 characters), the same way every time.

    >>> class_label(" forklift ", 3), class_label("", 3), len(class_label("x" * 300, 0))
    ('forklift', 'class_3', 128)
    """
    label = name.strip()[:MAX_NAME_LENGTH]
    return label or f"class_{index}"


def _refuse_unsupported(metadata: Mapping[str, str]) -> None:
    task = metadata.get("task", "detect")
    if task != "detect":
        raise ModelError(f"model task is {task!r}; only 'detect' models are supported")
    args = metadata.get("args", "")
    try:
        nms_inside = bool(ast.literal_eval(args).get("nms")) if args else False
    except (ValueError, TypeError, SyntaxError, AttributeError, MemoryError, RecursionError):
        nms_inside = False  # `args` is informative only; the output shape is checked anyway
    if metadata.get("end2end") == "True" or nms_inside:
        raise ModelError(
            "model is an end-to-end export (NMS-free head or NMS inside, output (1, N, 6)); "
            "export it with Ultralytics' default nms=None, which leaves NMS to the detector"
        )


# --- shapes --------------------------------------------------------------------------------


def _dims(shape: Sequence[object]) -> tuple[int | None, ...]:
    return tuple(d if type(d) is int and d > 0 else None for d in shape)


def detect_layout(output_shape: Sequence[int | None], classes: int) -> Layout:
    """Which YOLO head wrote an output of this shape, for `classes` classes.

    YOLOv8/YOLO11: `(1, 4 + nc, anchors)`, no objectness. YOLOv5: `(1, anchors, 5 + nc)`.

    >>> detect_layout((1, 84, 8400), 80), detect_layout((1, 25200, 85), 80)
    ('v8', 'v5')
    """
    shape = tuple(output_shape)
    if len(shape) != 3 or shape[0] not in (1, None):
        raise ModelError(f"model output {shape} is not (1, channels, anchors)")
    v8, v5 = shape[1] == 4 + classes, shape[2] == 5 + classes
    if v8 and v5:
        raise ModelError(f"model output {shape} fits both YOLOv8 and YOLOv5 for {classes} classes")
    if not (v8 or v5):
        raise ModelError(
            f"model output {shape} fits no known layout for {classes} classes: "
            f"YOLOv8/11 gives (1, {4 + classes}, anchors), YOLOv5 (1, anchors, {5 + classes})"
        )
    return "v8" if v8 else "v5"


def _input_size(metadata: Mapping[str, str], shape: tuple[int | None, ...]) -> Size:
    if len(shape) != 4 or shape[1] not in (3, None):
        raise ModelError(f"model input {shape} is not (1, 3, height, width)")
    if shape[0] not in (1, None):
        raise ModelError(f"model input has batch {shape[0]}; export it with batch=1")
    static = (shape[2], shape[3]) if shape[2] and shape[3] else None
    if "imgsz" in metadata:
        size = parse_imgsz(metadata["imgsz"])
        if static and static != size:
            raise ModelError(f"metadata 'imgsz' {list(size)} disagrees with model input {shape}")
        return size
    if static is None:
        raise ModelError(f"model input {shape} is dynamic and metadata has no 'imgsz'")
    return static


# --- preprocessing -------------------------------------------------------------------------


def letterbox_geometry(frame: Size, input_size: Size) -> Letterbox:
    """Where a `frame` (height, width) lands in the model input, as Ultralytics computes it.

    Scales to fit (up or down), keeps each side at least one pixel, and centres it; an odd
    padding puts the extra pixel bottom and right (`round(d - 0.1)`, `round(d + 0.1)`).

    >>> letterbox_geometry((480, 640), (160, 160))
    Letterbox(frame=(480, 640), resized=(120, 160), top=20, bottom=20, left=0, right=0)
    >>> letterbox_geometry((97, 131), (160, 160))
    Letterbox(frame=(97, 131), resized=(118, 160), top=21, bottom=21, left=0, right=0)
    """
    height, width = frame
    gain = min(input_size[0] / height, input_size[1] / width)
    new_h, new_w = max(round(height * gain), 1), max(round(width * gain), 1)
    pad_h, pad_w = (input_size[0] - new_h) / 2, (input_size[1] - new_w) / 2
    return Letterbox(
        frame=frame,
        resized=(new_h, new_w),
        top=round(pad_h - 0.1),
        bottom=round(pad_h + 0.1),
        left=round(pad_w - 0.1),
        right=round(pad_w + 0.1),
    )


def letterbox(
    image: npt.NDArray[np.uint8], input_size: Size
) -> tuple[npt.NDArray[np.uint8], Letterbox]:
    """`image` resized (bilinear) and padded with grey 114 to `input_size`, and the geometry."""
    geometry = letterbox_geometry((image.shape[0], image.shape[1]), input_size)
    new_h, new_w = geometry.resized
    if (new_h, new_w) != geometry.frame:
        image = np.asarray(
            cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR), dtype=np.uint8
        )
    padded = cv2.copyMakeBorder(
        image,
        geometry.top,
        geometry.bottom,
        geometry.left,
        geometry.right,
        cv2.BORDER_CONSTANT,
        value=(PAD_VALUE, PAD_VALUE, PAD_VALUE),
    )
    return np.asarray(padded, dtype=np.uint8), geometry


def to_tensor(image: npt.NDArray[np.uint8], dtype: type[np.floating[Any]] = np.float32) -> Floats:
    """A BGR HWC uint8 image as the model input: RGB, 1 x 3 x H x W, 0..1, contiguous.

    Divides by 255 (not multiplies by 1/255) so the values equal Ultralytics' bit for bit.

    >>> to_tensor(np.array([[[0, 51, 255]]], dtype=np.uint8)).ravel().tolist()
    [1.0, 0.20000000298023224, 0.0]
    """
    tensor = np.empty((1, 3, image.shape[0], image.shape[1]), dtype=dtype)
    # One contiguous plane at a time: a third faster than dividing the transposed view.
    for channel, plane in enumerate(reversed(cv2.split(image))):
        np.divide(plane, dtype(255), out=tensor[0, channel])
    return tensor


# --- decoding and postprocessing -----------------------------------------------------------


def decode(output: npt.NDArray[np.floating[Any]], layout: Layout, conf: float) -> Candidates:
    """The candidates scoring above `conf` in one frame's raw output `(1, ..., ...)`.

    Each anchor keeps its best class. YOLOv5 scores are objectness x class score, and
    anchors with objectness at or below `conf` are dropped first, as YOLOv5 does.

    >>> out = np.zeros((1, 4 + 2, 3), dtype=np.float32)
    >>> out[0, :, 1] = [50, 40, 20, 10, 0.125, 0.75]  # cx, cy, w, h, class 0, class 1
    >>> found = decode(out, "v8", 0.25)
    >>> found.boxes.tolist(), found.scores.tolist(), found.class_ids.tolist()
    ([[40.0, 35.0, 60.0, 45.0]], [0.75], [1])
    """
    rows = np.asarray(output, dtype=np.float32)[0]
    if layout == "v8":
        scores = rows[4:]
        best = scores.max(axis=0, initial=-np.inf)
        index = np.flatnonzero(best > conf)
        class_ids = scores[:, index].argmax(axis=0)
        return _candidates(rows[:4, index].T, best[index], class_ids)
    rows = rows[rows[:, 4] > conf]
    scores = rows[:, 5:] * rows[:, 4:5]
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(len(rows)), class_ids]
    keep = best > conf
    return _candidates(rows[keep, :4], best[keep], class_ids[keep])


def _candidates(xywh: Floats, scores: Floats, class_ids: npt.NDArray[np.intp]) -> Candidates:
    # A broken model may emit NaN or negative sizes; such boxes cannot go on the wire.
    sane = np.isfinite(xywh).all(axis=1) & (xywh[:, 2:] >= 0).all(axis=1) & np.isfinite(scores)
    xywh = xywh[sane]
    half = xywh[:, 2:] * np.float32(0.5)  # exact, like Ultralytics' / 2
    boxes = np.concatenate((xywh[:, :2] - half, xywh[:, :2] + half), axis=1)
    return Candidates(boxes, scores[sane], class_ids[sane].astype(np.intp))


def select(found: Candidates, iou: float, max_det: int, *, agnostic: bool = False) -> Candidates:
    """The candidates that survive NMS, best first, at most `max_det`."""
    if len(found.scores) > MAX_NMS_CANDIDATES:
        found = found.take(np.argsort(-found.scores, kind="stable")[:MAX_NMS_CANDIDATES])
    keep = batched_nms(
        found.boxes, found.scores, found.class_ids, iou, agnostic=agnostic, limit=max_det
    )
    return found.take(keep)


def to_frame(boxes: Floats, geometry: Letterbox) -> npt.NDArray[np.float64]:
    """Model-input boxes mapped to the original frame and normalised to 0..1 (clipped).

    >>> g = letterbox_geometry((480, 640), (160, 160))
    >>> to_frame(np.array([[0, 20, 80, 140]], dtype=np.float32), g).tolist()
    [[0.0, 0.0, 0.5, 1.0]]
    """
    (height, width), (new_h, new_w) = geometry.frame, geometry.resized
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) - (
        geometry.left,
        geometry.top,
        geometry.left,
        geometry.top,
    )
    # Undo the scale of each axis on its own, like Ultralytics' `scale_boxes`: the
    # rounded resize makes the two gains differ slightly.
    out *= (width / new_w, height / new_h, width / new_w, height / new_h)
    np.clip(out, 0.0, (width, height, width, height), out=out)
    return out / (width, height, width, height)


# --- the detector --------------------------------------------------------------------------


class _Session(Protocol):
    """The part of `onnxruntime.InferenceSession` the detector uses."""

    def run(self, output_names: list[str], input_feed: dict[str, Floats]) -> list[Any]: ...


class Detector:
    """A YOLO ONNX model ready to find objects in BGR frames (see the module docstring)."""

    def __init__(self, path: Path, options: DetectorOptions) -> None:
        """Load `path`; raise `ModelError` naming the problem if it is not a usable detector."""
        data = _read(path)
        session = _open_session(data, options, path)
        self._options = options
        self._session: _Session = session
        self._input, self._output, self._dtype, self.info = _describe(session, path, data)
        logger.info(
            "detector loaded %s (sha256 %s, input %dx%d, %d classes, layout %s, providers %s)",
            path,
            self.info.sha256[:12],
            *self.info.input_size,
            len(self.info.classes),
            self.info.layout,
            ",".join(session.get_providers()),
        )

    @property
    def options(self) -> DetectorOptions:
        """The options the detector was built with."""
        return self._options

    def detect(self, image: npt.NDArray[np.uint8]) -> Detections:
        """The objects in one BGR uint8 frame (H x W x 3), best first. Blocks."""
        _check_image(image)
        start = time.perf_counter()
        tensor, geometry = self.preprocess(image)
        prepared = time.perf_counter()
        output = self.run_raw(tensor)
        inferred = time.perf_counter()
        objects = self.postprocess(output, geometry)
        done = time.perf_counter()
        return Detections(
            objects=objects,
            preprocess_ms=(prepared - start) * 1000,
            infer_ms=(inferred - prepared) * 1000,
            postprocess_ms=(done - inferred) * 1000,
        )

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[Floats, Letterbox]:
        """A BGR frame as the model's input tensor, and where the frame landed in it."""
        padded, geometry = letterbox(np.ascontiguousarray(image), self.info.input_size)
        return to_tensor(padded, self._dtype), geometry

    def run_raw(self, tensor: Floats) -> npt.NDArray[np.floating[Any]]:
        """The model's raw output for a prepared `1 x 3 x H x W` tensor: one `session.run`."""
        try:
            output = self._session.run([self._output], {self._input: tensor})[0]
        except _ORT_ERRORS as exc:
            raise ModelError(f"{self.info.path}: inference failed: {exc}") from exc
        return np.asarray(output)

    def postprocess(
        self, output: npt.NDArray[np.floating[Any]], geometry: Letterbox
    ) -> list[DetectedObject]:
        """Raw output to objects in the frame: confidence filter, NMS, `max_det`, scaling."""
        self._check_output(output)
        options = self._options
        found = decode(output, self.info.layout, options.conf)
        kept = select(found, options.iou, options.max_det, agnostic=options.agnostic)
        boxes = to_frame(kept.boxes, geometry).tolist()
        classes = self.info.classes
        return [
            DetectedObject(
                cls=classes[class_id],
                conf=min(score, 1.0),
                box=Box(x1=box[0], y1=box[1], x2=box[2], y2=box[3]),
            )
            for box, score, class_id in zip(
                boxes, kept.scores.tolist(), kept.class_ids.tolist(), strict=True
            )
        ]

    def warm_up(self, runs: int = 2) -> None:
        """Run `runs` blank frames through the whole path, so the first real frame is not slow."""
        if runs < 1:
            raise ValueError(f"runs must be at least 1, not {runs}")
        blank = np.full((*self.info.input_size, 3), PAD_VALUE, dtype=np.uint8)
        for _ in range(runs):
            self.detect(blank)

    def _check_output(self, output: npt.NDArray[np.floating[Any]]) -> None:
        expected = self.info.output_shape
        if output.ndim != len(expected) or any(
            want is not None and got != want
            for got, want in zip(output.shape, expected, strict=True)
        ):
            raise ModelError(f"{self.info.path}: output {output.shape} does not match {expected}")


def _check_image(image: npt.NDArray[np.uint8]) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("the frame must be a numpy uint8 array")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"the frame must be BGR, height x width x 3, not {image.shape}")


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the model: {exc.strerror or exc}") from exc


def _open_session(data: bytes, options: DetectorOptions, path: Path) -> Any:
    available = set(ort.get_available_providers())
    providers = [name for name in options.providers if name in available]
    if not providers:
        raise ModelError(
            f"none of the execution providers {options.providers} is available here; "
            f"available: {sorted(available)}"
        )
    if len(providers) < len(options.providers):
        logger.warning(
            "execution providers %s are not available; using %s",
            [name for name in options.providers if name not in available],
            providers,
        )
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = options.intra_op_threads
    settings.inter_op_num_threads = options.inter_op_threads
    settings.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    settings.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    settings.log_severity_level = 3  # errors only: onnxruntime's warnings are not actionable here
    if not options.allow_spinning:
        settings.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        # From the bytes already read, so `sha256` is the hash of what actually runs.
        return ort.InferenceSession(data, sess_options=settings, providers=providers)
    except _ORT_ERRORS as exc:
        raise ModelError(f"{path}: onnxruntime cannot load the model: {exc}") from exc


def _describe(
    session: Any, path: Path, data: bytes
) -> tuple[str, str, type[np.floating[Any]], ModelInfo]:
    metadata = dict(session.get_modelmeta().custom_metadata_map)
    inputs, outputs = session.get_inputs(), session.get_outputs()
    try:
        dtype, input_size, names, output_shape = _inspect(metadata, inputs, outputs)
        layout = detect_layout(output_shape, len(names))
    except ModelError as exc:
        raise ModelError(f"{path}: {exc}") from None
    info = ModelInfo(
        path=path,
        sha256=hashlib.sha256(data).hexdigest(),
        input_size=input_size,
        classes=tuple(class_label(name, i) for i, name in enumerate(names)),
        layout=layout,
        output_shape=output_shape,
        metadata=MappingProxyType(metadata),
    )
    return inputs[0].name, outputs[0].name, dtype, info


def _inspect(
    metadata: Mapping[str, str], inputs: Sequence[Any], outputs: Sequence[Any]
) -> tuple[type[np.floating[Any]], Size, tuple[str, ...], tuple[int | None, ...]]:
    if len(inputs) != 1 or len(outputs) != 1:
        raise ModelError(
            f"model has {len(inputs)} inputs and {len(outputs)} outputs; a detector has 1 and 1"
        )
    _refuse_unsupported(metadata)
    dtype = _input_dtype(inputs[0].type)
    input_size = _input_size(metadata, _dims(inputs[0].shape))
    if "names" not in metadata:
        raise ModelError("metadata has no 'names': the class names are unknown")
    return dtype, input_size, parse_names(metadata["names"]), _dims(outputs[0].shape)


def _input_dtype(onnx_type: str) -> type[np.floating[Any]]:
    if onnx_type == "tensor(float)":
        return np.float32
    if onnx_type == "tensor(float16)":
        return np.float16
    raise ModelError(
        f"model input is {onnx_type}; a detector takes tensor(float) or tensor(float16)"
    )
