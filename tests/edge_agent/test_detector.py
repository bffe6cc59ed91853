"""The ONNX detector: options, metadata, letterbox geometry, decoding, NMS, and the whole
path on tiny ONNX files whose output is a constant we choose (built with `onnx`)."""

from __future__ import annotations

import doctest
import hashlib
import logging
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.errors import AgentError
from edge_agent.perception import detector as detector_module
from edge_agent.perception import nms as nms_module
from edge_agent.perception.detector import (
    Candidates,
    Detector,
    DetectorOptions,
    ModelError,
    class_label,
    decode,
    detect_layout,
    letterbox,
    letterbox_geometry,
    parse_imgsz,
    parse_names,
    select,
    to_frame,
    to_tensor,
)
from edge_agent.perception.nms import batched_nms, box_iou, nms
from protocol.models import DetectedObject

NAMES = "{0: 'person', 1: 'forklift'}"
META = {"names": NAMES, "imgsz": "[160, 160]", "task": "detect", "stride": "32"}


# --- options -------------------------------------------------------------------------------


def test_options_defaults():
    options = DetectorOptions()
    assert options.providers == ["CPUExecutionProvider"]
    assert (options.intra_op_threads, options.inter_op_threads) == (0, 1)
    assert (options.conf, options.iou, options.max_det, options.agnostic) == (
        0.25,
        0.45,
        300,
        False,
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("conf", 1.0),
        ("conf", -0.01),
        ("iou", 1.01),
        ("max_det", 0),
        ("max_det", 1001),
        ("intra_op_threads", -1),
        ("inter_op_threads", 257),
        ("providers", []),
        ("providers", ["cuda"]),
        ("providers", ["CPUExecutionProvider", "CPUExecutionProvider"]),
        ("confidence", 0.5),
    ],
)
def test_options_refuse_values_outside_limits(key, value):
    with pytest.raises(ValidationError) as caught:
        DetectorOptions.model_validate({key: value})
    assert caught.value.errors()[0]["loc"][0] == key


def test_options_are_frozen():
    with pytest.raises(ValidationError):
        DetectorOptions().conf = 0.5  # type: ignore[misc]


# --- metadata ------------------------------------------------------------------------------


def test_parse_names_accepts_dict_in_any_key_order_and_list():
    assert parse_names("{1: 'car', 0: 'person'}") == ("person", "car")
    assert parse_names("('a',)") == ("a",)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("__import__('os').system('false')", "not a Python literal"),
        ("{0: 'a', 2: 'b'}", "keys must be 0..1"),
        ("{'0': 'a'}", "keys must be 0..0"),
        ("{}", "non-empty"),
        ("'person'", "non-empty dict or list"),
        ("{0: ['a']}", "values must be strings"),
        ("[" * 100_000, "not a Python literal"),
        ("'" + "x" * (1 << 20) + "'", "longer than"),
    ],
)
def test_parse_names_refuses_what_it_cannot_understand(text, complaint):
    with pytest.raises(ModelError, match=complaint):
        parse_names(text)


@pytest.mark.parametrize("text", ["[0, 160]", "[160]", "'160'", "[160.0, 160]", "[True, 1]", "x"])
def test_parse_imgsz_refuses_anything_but_two_positive_ints(text):
    with pytest.raises(ModelError, match="imgsz"):
        parse_imgsz(text)


def test_class_label_fits_the_wire_name():
    assert class_label("x" * 200, 0) == "x" * 128
    assert class_label(" \t", 7) == "class_7"
    assert class_label("person", 0) == "person"


# --- layouts and decoding ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "complaint"),
    [
        ((1, 6, 7), "fits both"),  # v8 with 7 anchors, or v5 with 6
        ((1, 9, 8400), "fits no known layout"),
        ((1, 84), "not \\(1, channels, anchors\\)"),
        ((2, 6, 8400), "not \\(1, channels, anchors\\)"),
    ],
)
def test_detect_layout_refuses_unknown_shapes(shape, complaint):
    with pytest.raises(ModelError, match=complaint):
        detect_layout(shape, 2)


def test_detect_layout_accepts_dynamic_batch_and_anchors():
    assert detect_layout((None, 6, None), 2) == "v8"
    assert detect_layout((None, None, 7), 2) == "v5"


def v8_output(rows: list[list[float]]) -> np.ndarray:
    """(1, 4 + nc, anchors) from rows of (cx, cy, w, h, *class scores)."""
    return np.asarray(rows, dtype=np.float32).T[None]


def v5_output(rows: list[list[float]]) -> np.ndarray:
    """(1, anchors, 5 + nc) from rows of (cx, cy, w, h, objectness, *class scores)."""
    return np.asarray(rows, dtype=np.float32)[None]


def test_decode_v8_keeps_best_class_strictly_above_conf():
    out = v8_output(
        [
            [10, 10, 4, 2, 0.1, 0.6],
            [20, 20, 2, 2, 0.25, 0.1],  # exactly at conf: dropped
            [30, 40, 10, 20, 0.7, 0.3],
        ]
    )
    found = decode(out, "v8", 0.25)
    assert found.boxes.tolist() == [[8, 9, 12, 11], [25, 30, 35, 50]]
    assert found.scores.tolist() == pytest.approx([0.6, 0.7])
    assert found.class_ids.tolist() == [1, 0]


def test_decode_v5_scores_objectness_times_class():
    out = v5_output(
        [
            [10, 10, 4, 2, 0.9, 0.2, 0.5],  # 0.45 for class 1
            [20, 20, 2, 2, 0.5, 0.4, 0.3],  # 0.2: below conf
            [30, 30, 2, 2, 0.2, 1.0, 0.0],  # objectness at or below conf: dropped first
        ]
    )
    found = decode(out, "v5", 0.2)
    assert found.boxes.tolist() == [[8, 9, 12, 11]]
    assert found.scores.tolist() == pytest.approx([0.45])
    assert found.class_ids.tolist() == [1]


@pytest.mark.parametrize("bad", [[np.nan, 10, 4, 4], [10, 10, -1, 4], [10, np.inf, 4, 4]])
def test_decode_drops_boxes_that_cannot_go_on_the_wire(bad):
    found = decode(v8_output([[*bad, 0.9], [10, 10, 4, 4, 0.8]]), "v8", 0.25)
    assert found.scores.tolist() == pytest.approx([0.8])


def test_select_applies_nms_per_class_and_max_det():
    found = Candidates(
        boxes=np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], "f4"),
        scores=np.array([0.9, 0.8, 0.7, 0.6], "f4"),
        class_ids=np.array([0, 0, 1, 0]),
    )
    assert select(found, 0.45, 300).scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert select(found, 0.45, 300, agnostic=True).scores.tolist() == pytest.approx([0.9, 0.6])
    assert select(found, 0.45, 2).scores.tolist() == pytest.approx([0.9, 0.7])


# --- NMS against a plain reference ---------------------------------------------------------


def reference_iou(a: list[float], b: list[float]) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes: list[list[float]], scores: list[float], threshold: float) -> list[int]:
    """Greedy NMS as written in the papers: keep a box unless a kept box overlaps it."""
    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if all(reference_iou(boxes[i], boxes[k]) <= threshold for k in kept):
            kept.append(i)
    return kept


@st.composite
def scored_boxes(draw, max_size=40):
    n = draw(st.integers(0, max_size))
    coords = st.integers(-20, 100)
    boxes = []
    for _ in range(n):
        x, y = draw(coords), draw(coords)
        w, h = draw(st.integers(0, 60)), draw(st.integers(0, 60))
        boxes.append([float(x), float(y), float(x + w), float(y + h)])
    # Distinct scores: which of two equal scores goes first is not specified.
    scores = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    classes = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return boxes, [s / 10**6 for s in scores], classes


@settings(max_examples=150, deadline=None)
@given(scored_boxes(), st.sampled_from([0.0, 0.3, 0.45, 0.7, 1.0]))
def test_nms_matches_reference(data, threshold):
    boxes, scores, _ = data
    kept = nms(np.array(boxes).reshape(-1, 4), np.array(scores), threshold)
    assert kept.tolist() == reference_nms(boxes, scores, threshold)


@settings(max_examples=150, deadline=None)
@given(scored_boxes(), st.sampled_from([0.3, 0.45, 0.7]), st.integers(1, 10))
def test_batched_nms_matches_reference_per_class(data, threshold, limit):
    boxes, scores, classes = data
    expected: list[int] = []
    for cls in set(classes):
        members = [i for i, c in enumerate(classes) if c == cls]
        kept = reference_nms([boxes[i] for i in members], [scores[i] for i in members], threshold)
        expected += [members[k] for k in kept]
    expected.sort(key=lambda i: -scores[i])
    array = np.array(boxes).reshape(-1, 4)
    got = batched_nms(array, np.array(scores), np.array(classes), threshold, limit=limit)
    assert got.tolist() == expected[:limit]
    agnostic = batched_nms(array, np.array(scores), np.array(classes), threshold, agnostic=True)
    assert agnostic.tolist() == reference_nms(boxes, scores, threshold)


def test_batched_nms_keeps_classes_apart_at_negative_coordinates():
    boxes = np.array([[-100, -100, -90, -90], [-100, -100, -90, -90], [0, 0, 1, 1]], "f4")
    assert batched_nms(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 1, 2]), 0.5).tolist() == [
        0,
        1,
        2,
    ]


def test_nms_keeps_zero_area_boxes():
    boxes = np.array([[5, 5, 5, 5], [5, 5, 5, 5]], "f4")
    assert nms(boxes, np.array([0.9, 0.8]), 0.5).tolist() == [0, 1]
    assert box_iou([5, 5, 5, 5], boxes).tolist() == [0.0, 0.0]


# --- letterbox -----------------------------------------------------------------------------


def test_letterbox_geometry_puts_the_odd_pixel_bottom_right():
    g = letterbox_geometry((100, 161), (160, 160))
    assert g.resized == (99, 160)
    assert (g.top, g.bottom, g.left, g.right) == (30, 31, 0, 0)
    g = letterbox_geometry((161, 100), (160, 160))
    assert (g.left, g.right) == (30, 31)


def test_letterbox_geometry_scales_up_and_keeps_thin_frames():
    assert letterbox_geometry((10, 20), (160, 160)).resized == (80, 160)
    assert letterbox_geometry((1, 3000), (160, 160)).resized == (1, 160)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 4000), st.integers(1, 4000), st.integers(16, 1280), st.integers(16, 1280))
def test_letterbox_geometry_fills_the_input_and_keeps_the_aspect(fh, fw, ih, iw):
    g = letterbox_geometry((fh, fw), (ih, iw))
    assert g.resized[0] + g.top + g.bottom == ih
    assert g.resized[1] + g.left + g.right == iw
    assert 0 <= g.bottom - g.top <= 1
    assert 0 <= g.right - g.left <= 1
    gain = min(ih / fh, iw / fw)
    assert abs(g.resized[0] - fh * gain) <= 0.5 + 1e-9 or g.resized[0] == 1
    assert abs(g.resized[1] - fw * gain) <= 0.5 + 1e-9 or g.resized[1] == 1


def test_letterbox_pads_with_grey_around_the_resized_frame():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    padded, g = letterbox(frame, (160, 160))
    assert padded.shape == (160, 160, 3)
    assert padded.dtype == np.uint8
    assert (padded[: g.top] == 114).all()
    assert (padded[160 - g.bottom :] == 114).all()
    resized = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(padded[g.top : g.top + 120], resized)


def test_to_tensor_is_rgb_chw_unit_range_contiguous():
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0], image[..., 2] = 255, 51  # blue, red
    tensor = to_tensor(image)
    assert tensor.shape == (1, 3, 2, 3)
    assert tensor.dtype == np.float32
    assert tensor.flags.c_contiguous
    assert tensor[0, 0].tolist() == [[np.float32(51) / np.float32(255)] * 3] * 2  # red first
    assert (tensor[0, 2] == 1.0).all()
    assert to_tensor(image, np.float16).dtype == np.float16


@settings(max_examples=100, deadline=None)
@given(
    st.integers(8, 2000),
    st.integers(8, 2000),
    st.floats(0.0, 0.9),
    st.floats(0.0, 0.9),
    st.floats(0.05, 1.0),
    st.floats(0.05, 1.0),
)
def test_to_frame_inverts_the_letterbox(fh, fw, x, y, bw, bh):
    x2, y2 = min(x + bw, 1.0), min(y + bh, 1.0)
    g = letterbox_geometry((fh, fw), (160, 192))
    gain_x, gain_y = g.resized[1] / fw, g.resized[0] / fh
    in_input = np.array(
        [
            [
                x * fw * gain_x + g.left,
                y * fh * gain_y + g.top,
                x2 * fw * gain_x + g.left,
                y2 * fh * gain_y + g.top,
            ]
        ],
        dtype=np.float32,
    )
    assert to_frame(in_input, g)[0] == pytest.approx([x, y, x2, y2], abs=1e-5)


def test_to_frame_clips_to_the_frame():
    g = letterbox_geometry((480, 640), (160, 160))
    assert to_frame(np.array([[-10, 0, 170, 160]], "f4"), g).tolist() == [[0.0, 0.0, 1.0, 1.0]]


def test_module_examples_hold():
    for module in (detector_module, nms_module):
        result = doctest.testmod(module)
        assert result.attempted > 0
        assert result.failed == 0


# --- whole path on tiny ONNX files ---------------------------------------------------------


@pytest.fixture
def make_model(tmp_path):
    """Writes an ONNX file whose output is the constant given, whatever the frame."""
    import onnx

    helper, numpy_helper = onnx.helper, onnx.numpy_helper

    def make(
        output,
        metadata=META,
        *,
        input_shape=(1, 3, 160, 160),
        input_type="FLOAT",
        outputs=1,
        name="model.onnx",
    ):
        value = np.asarray(output, dtype=np.float32)
        nodes = [
            helper.make_node("Constant", [], [f"output{i}"], value=numpy_helper.from_array(value))
            for i in range(outputs)
        ]
        graph = helper.make_graph(
            nodes,
            "constant",
            [
                helper.make_tensor_value_info(
                    "images", getattr(onnx.TensorProto, input_type), input_shape
                )
            ],
            [
                helper.make_tensor_value_info(f"output{i}", onnx.TensorProto.FLOAT, value.shape)
                for i in range(outputs)
            ],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        model.ir_version = 9
        helper.set_model_props(model, dict(metadata))
        path = tmp_path / name
        onnx.save(model, path)
        return path

    return make


def two_boxes_v8() -> np.ndarray:
    # Two overlapping boxes (IoU 0.82) of different classes and a faint one, in input pixels.
    return v8_output(
        [
            [80, 80, 40, 20, 0.9, 0.1],
            [84, 80, 40, 20, 0.2, 0.8],
            [20, 20, 10, 10, 0.1, 0.05],
        ]
    )


def test_detector_reads_the_model(make_model):
    path = make_model(two_boxes_v8())
    detector = Detector(path, DetectorOptions())
    info = detector.info
    assert info.path == path
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.input_size == (160, 160)
    assert info.classes == ("person", "forklift")
    assert (info.layout, info.output_shape) == ("v8", (1, 6, 3))
    assert info.metadata["stride"] == "32"


def test_detect_maps_boxes_back_to_the_frame(make_model):
    detector = Detector(make_model(two_boxes_v8()), DetectorOptions())
    result = detector.detect(np.zeros((480, 640, 3), dtype=np.uint8))
    # Frame 480 x 640 lands at gain 0.25 with 20 px of padding on top and bottom.
    assert [o.cls for o in result.objects] == ["person", "forklift"]
    assert [o.conf for o in result.objects] == pytest.approx([0.9, 0.8])
    first = result.objects[0].box
    assert (first.x1, first.y1, first.x2, first.y2) == pytest.approx(
        (240 / 640, 200 / 480, 400 / 640, 280 / 480)
    )
    assert all(DetectedObject.model_validate(o.model_dump()) == o for o in result.objects)
    assert min(result.preprocess_ms, result.infer_ms, result.postprocess_ms) > 0
    assert result.latency_ms == pytest.approx(
        result.preprocess_ms + result.infer_ms + result.postprocess_ms
    )


def test_detect_honours_options(make_model):
    path = make_model(two_boxes_v8())
    frame = np.zeros((160, 160, 3), dtype=np.uint8)

    def classes(**options: Any) -> list[str]:
        return [o.cls for o in Detector(path, DetectorOptions(**options)).detect(frame).objects]

    assert classes(agnostic=True) == ["person"]
    assert classes(max_det=1) == ["person"]
    assert classes(conf=0.85) == ["person"]
    assert classes(conf=0.05) == ["person", "forklift", "person"]
    assert classes(iou=0.85, agnostic=True) == ["person", "forklift"]


def test_detect_reads_yolov5_layout(make_model):
    output = v5_output([[80, 80, 40, 20, 0.5, 0.2, 0.9], [10, 10, 4, 4, 0.1, 0.9, 0.9]])
    detector = Detector(make_model(output), DetectorOptions())
    assert detector.info.layout == "v5"
    (found,) = detector.detect(np.zeros((160, 160, 3), dtype=np.uint8)).objects
    assert found.cls == "forklift"
    assert found.conf == pytest.approx(0.45)
    assert (found.box.x1, found.box.y1, found.box.x2, found.box.y2) == pytest.approx(
        (0.375, 0.4375, 0.625, 0.5625)
    )


def test_input_size_falls_back_to_the_static_input_shape(make_model):
    meta = {"names": NAMES}
    detector = Detector(
        make_model(two_boxes_v8(), meta, input_shape=(1, 3, 96, 128)), DetectorOptions()
    )
    assert detector.info.input_size == (96, 128)
    detector.warm_up()


def test_float16_input_and_sanitised_class_names(make_model):
    meta = {"names": "{0: '  ', 1: '" + "y" * 200 + "'}", "imgsz": "160"}
    detector = Detector(make_model(two_boxes_v8(), meta, input_type="FLOAT16"), DetectorOptions())
    assert detector.info.classes == ("class_0", "y" * 128)
    first, *_ = detector.detect(np.zeros((9, 9, 3), np.uint8)).objects
    assert first.cls == "class_0"


@pytest.mark.parametrize(
    ("metadata", "kwargs", "complaint"),
    [
        ({"imgsz": "[160, 160]"}, {}, "no 'names'"),
        ({**META, "names": "{0: 'a'}"}, {}, "fits no known layout for 1 classes"),
        ({**META, "task": "segment"}, {}, "task is 'segment'"),
        ({**META, "end2end": "True"}, {}, "end-to-end"),
        ({**META, "args": "{'nms': True, 'batch': 1}"}, {}, "end-to-end"),
        (
            {"names": NAMES},
            {"input_shape": (1, 3, "h", "w")},
            "dynamic and metadata has no 'imgsz'",
        ),
        ({**META, "imgsz": "[320, 320]"}, {}, "disagrees with model input"),
        (META, {"input_shape": (4, 3, 160, 160)}, "batch 4"),
        (META, {"input_shape": (1, 1, 160, 160)}, "not \\(1, 3, height, width\\)"),
        (META, {"input_type": "UINT8"}, "tensor\\(uint8\\)"),
        (META, {"outputs": 2}, "2 outputs"),
    ],
)
def test_unusable_models_are_refused_with_the_reason(make_model, metadata, kwargs, complaint):
    path = make_model(two_boxes_v8(), metadata, **kwargs)
    with pytest.raises(ModelError, match=complaint) as caught:
        Detector(path, DetectorOptions())
    assert str(caught.value).startswith(str(path))
    assert isinstance(caught.value, AgentError)


def test_unreadable_files_are_refused(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        Detector(tmp_path / "missing.onnx", DetectorOptions())
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="onnxruntime cannot load"):
        Detector(garbage, DetectorOptions())


def test_providers_fall_back_to_those_available(make_model, caplog):
    path = make_model(two_boxes_v8())
    with pytest.raises(ModelError, match="none of the execution providers"):
        Detector(path, DetectorOptions(providers=["NoSuchExecutionProvider"]))
    options = DetectorOptions(
        providers=["NoSuchExecutionProvider", "CPUExecutionProvider"],
        intra_op_threads=1,
        allow_spinning=False,
    )
    with caplog.at_level(logging.WARNING):
        Detector(path, options).warm_up(1)
    assert "NoSuchExecutionProvider" in caplog.text


@pytest.mark.parametrize(
    "frame",
    [
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
    ],
)
def test_detect_refuses_frames_that_are_not_bgr_uint8(make_model, frame):
    detector = Detector(make_model(two_boxes_v8()), DetectorOptions())
    with pytest.raises(ValueError, match="frame must be"):
        detector.detect(frame)


def test_output_of_the_wrong_shape_is_a_model_error(make_model):
    detector = Detector(make_model(two_boxes_v8()), DetectorOptions())
    geometry = letterbox_geometry((160, 160), (160, 160))
    with pytest.raises(ModelError, match="does not match"):
        detector.postprocess(np.zeros((1, 7, 3), np.float32), geometry)
    with pytest.raises(ValueError, match="at least 1"):
        detector.warm_up(0)


def test_run_raw_is_the_plain_session_output(make_model):
    output = two_boxes_v8()
    detector = Detector(make_model(output), DetectorOptions())
    raw = detector.run_raw(np.zeros((1, 3, 160, 160), np.float32))
    assert np.array_equal(raw, output)
