"""`POST /v1/detect` on a real port with the shipped detector: a simulator frame gets the
boxes the camera pipeline finds in it, raw or as a form; every bad request gets its
status and a reason; no model yet is 503; `[detect_api]` is validated like the rest."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import numpy.typing as npt
import pytest
from typer.testing import CliRunner

from edge_agent.cli import app
from edge_agent.config import settings_from_dict
from edge_agent.errors import ConfigError
from edge_agent.perception.camera import CameraFrame
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.default_model import SHIPPED_MODEL
from edge_agent.perception.detect_api import (
    MAX_WAITING,
    DetectApi,
    DetectApiError,
    DetectApiSection,
)
from edge_agent.perception.detector import DetectorOptions
from edge_agent.perception.pipeline import (
    ActiveModel,
    FramePipeline,
    PerceptionSection,
    local_model,
)
from edge_agent.runtime import Agent
from protocol.models import DetectedObject
from tests.edge_agent.sim_scene import encoded, person_and_forklift

LIMIT = 1 << 20
ACCEPTED = "image/jpeg, image/png, application/octet-stream, multipart/form-data"
LATENCY_KEYS = {"decode", "preprocess", "inference", "postprocess", "total"}


class Models:
    """The model provider the agent passes (`Agent.active_model`), switchable by a test."""

    def __init__(self, active: ActiveModel | None) -> None:
        self.active = active

    def __call__(self) -> ActiveModel | None:
        return self.active


@pytest.fixture(scope="module")
def shipped() -> ActiveModel:
    model = local_model(SHIPPED_MODEL, DetectorOptions())
    model.detector.warm_up(1)
    return model


@pytest.fixture(scope="module")
def scene() -> npt.NDArray[np.uint8]:
    return person_and_forklift()


@pytest.fixture(scope="module")
def jpeg(scene: npt.NDArray[np.uint8]) -> bytes:
    return encoded(scene)


@pytest.fixture
def models(shipped: ActiveModel) -> Models:
    return Models(shipped)


@pytest.fixture
def api(models: Models) -> Iterator[DetectApi]:
    section = DetectApiSection(port=0, max_bytes=LIMIT)  # port 0: an ephemeral port here
    with DetectApi(section, models, timeout_s=5) as server:
        yield server


@pytest.fixture
def client(api: DetectApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as http:
        yield http


def pipeline_objects(
    model: ActiveModel, image: npt.NDArray[np.uint8], data_dir: Path
) -> list[DetectedObject]:
    """What the camera pipeline reports for `image` as one camera frame."""
    pipeline = FramePipeline(
        CameraSection(name="front", source="0"), PerceptionSection(), lambda: model, data_dir
    )
    frame = CameraFrame(
        image=image, seq=1, frame_id="front-1", ts=datetime.now(UTC), camera="front"
    )
    processed = pipeline.process(frame)
    assert processed is not None
    return processed.result.objects


def iou(a: dict[str, float], b: dict[str, float]) -> float:
    w = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    h = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    inter = w * h
    area = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"])
    return inter / (area - inter)


def assert_same_objects(got: list[dict[str, Any]], want: list[DetectedObject]) -> None:
    assert [o["cls"] for o in got] == [o.cls for o in want]
    for answer, expected in zip(got, want, strict=True):
        assert set(answer) == {"cls", "conf", "box"}
        assert iou(answer["box"], expected.box.model_dump()) >= 0.99
        assert answer["conf"] == pytest.approx(expected.conf, abs=1e-6)


def detect(client: httpx.Client, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post("/v1/detect", content=body, headers=headers)


# --- the same boxes as the pipeline --------------------------------------------------------


def test_a_jpeg_gets_the_boxes_the_camera_pipeline_finds_in_it(
    client: httpx.Client, shipped: ActiveModel, jpeg: bytes, tmp_path: Path
) -> None:
    response = detect(client, jpeg, "image/jpeg")
    assert response.status_code == 200, response.text
    answer = response.json()
    decoded = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), np.uint8)
    expected = pipeline_objects(shipped, decoded, tmp_path)
    assert {o.cls for o in expected} >= {"person", "forklift"}
    assert_same_objects(answer["objects"], expected)
    assert answer["model"] == {
        "name": "outpost-sim-detector",
        "version": shipped.ref.version,
        "sha256": shipped.ref.sha256,
    }
    assert (answer["width"], answer["height"]) == (640, 480)
    latency = answer["latency_ms"]
    assert set(latency) == LATENCY_KEYS
    assert latency["inference"] > 0
    assert latency["total"] >= latency["decode"] + latency["inference"]


def test_a_multipart_form_with_an_image_field_gets_the_same_boxes(
    client: httpx.Client, shipped: ActiveModel, jpeg: bytes, tmp_path: Path
) -> None:
    response = client.post(
        "/v1/detect",
        data={"camera": "dock-3"},
        files={"image": ("frame.jpg", jpeg, "image/jpeg")},
    )
    assert response.status_code == 200, response.text
    decoded = np.asarray(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), np.uint8)
    assert_same_objects(response.json()["objects"], pipeline_objects(shipped, decoded, tmp_path))


@pytest.mark.parametrize("content_type", ["image/png", "application/octet-stream"])
def test_a_png_is_detected_as_the_frame_itself(
    client: httpx.Client,
    shipped: ActiveModel,
    scene: npt.NDArray[np.uint8],
    content_type: str,
    tmp_path: Path,
) -> None:
    response = detect(client, encoded(scene, ".png"), content_type)
    assert response.status_code == 200, response.text
    assert_same_objects(response.json()["objects"], pipeline_objects(shipped, scene, tmp_path))


def test_concurrent_requests_all_get_the_same_answer(
    client: httpx.Client, api: DetectApi, jpeg: bytes
) -> None:
    def one(_: int) -> list[dict[str, Any]]:
        with httpx.Client(base_url=api.url, timeout=60) as own:
            response = detect(own, jpeg, "image/jpeg")
        assert response.status_code == 200, response.text
        objects: list[dict[str, Any]] = response.json()["objects"]
        return objects

    with ThreadPoolExecutor(MAX_WAITING) as pool:
        answers = list(pool.map(one, range(MAX_WAITING)))
    assert all(answer == answers[0] for answer in answers)
    assert answers[0]


# --- no model yet --------------------------------------------------------------------------


def test_no_active_model_is_503_until_one_is_activated(
    client: httpx.Client, models: Models, shipped: ActiveModel, jpeg: bytes
) -> None:
    models.active = None
    response = detect(client, jpeg, "image/jpeg")
    assert response.status_code == 503
    assert response.json()["error"].startswith("no model is active: ")
    assert client.get("/v1/health").json() == {"model": None}

    models.active = shipped  # the model manager swapped one in
    assert detect(client, jpeg, "image/jpeg").status_code == 200
    assert client.get("/v1/health").json()["model"]["name"] == "outpost-sim-detector"


# --- bad requests --------------------------------------------------------------------------


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk))
    )


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        (b"<html>hi</html>", "image/jpeg", "not a JPEG or PNG image (first bytes: 3c 68 74 6d"),
        (b"", "image/jpeg", "the image is empty (0 bytes)"),
        (b"\x00" * 64, "application/octet-stream", "not a JPEG or PNG image (first bytes: 00 00"),
        (png_header(100_000, 100_000), "image/png", "the PNG is 100000x100000 pixels; at most"),
        (png_header(64, 48) + b"garbage", "image/png", "the PNG (40 bytes) is corrupt"),
        (
            b"--b\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"f.jpg\"\r\n\r\n"
            b"\xff\xd8\xff\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            "the multipart form has no field named 'image' (fields: photo)",
        ),
        (b"--b\r\n\r\n", "multipart/form-data", "needs a boundary parameter"),
        (
            b"--b\r\nContent-Disposition: form-data; name=\"image\"\r\n\r\n\xff\xd8\xff",
            "multipart/form-data; boundary=b",
            "its closing boundary is missing",
        ),
    ],
    ids=["html", "empty", "zeros", "huge-png", "corrupt-png", "no-image-field", "no-boundary",
         "unclosed-form"],
)  # fmt: skip
def test_a_bad_image_is_400_with_what_was_wrong(
    client: httpx.Client, body: bytes, content_type: str, reason: str
) -> None:
    response = detect(client, body, content_type)
    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_a_truncated_jpeg_is_400(client: httpx.Client, jpeg: bytes) -> None:
    response = detect(client, jpeg[:100], "image/jpeg")
    assert response.status_code == 400
    assert response.json()["error"] == (
        "the JPEG is truncated or corrupt: no frame header in its 100 bytes"
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_other_content_types_are_415_listing_the_accepted_ones(
    client: httpx.Client, jpeg: bytes, content_type: str | None
) -> None:
    response = detect(client, jpeg, content_type)
    assert response.status_code == 415
    assert response.json()["error"].endswith(f"; send one of {ACCEPTED}")
    # The refused body was read: the same keep-alive connection serves the next request.
    assert detect(client, jpeg, "image/jpeg").status_code == 200


def test_a_body_over_max_bytes_is_413_naming_the_limit(client: httpx.Client) -> None:
    response = detect(client, b"\xff" * (LIMIT + 1), "image/jpeg")
    assert response.status_code == 413
    assert response.json()["error"] == (
        f"the body is {LIMIT + 1} bytes; the limit is {LIMIT} ([detect_api] max_bytes)"
    )


def test_an_oversized_body_announced_with_expect_is_refused_before_it_is_sent(
    api: DetectApi,
) -> None:
    port = int(api.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {LIMIT * 10}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        reply = sock.makefile("rb").read()  # the server closes: no body is waited for
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"([detect_api] max_bytes)" in reply


def raw_post(api: DetectApi, declared: int, sent: bytes) -> bytes:
    """A POST that declares `declared` bytes and sends `sent`, then stops sending."""
    port = int(api.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
            + f"Content-Length: {declared}\r\n\r\n".encode()
            + sent
        )
        sock.shutdown(socket.SHUT_WR)
        return sock.makefile("rb").read()


def test_a_body_shorter_than_its_content_length_is_400(api: DetectApi, jpeg: bytes) -> None:
    reply = raw_post(api, 1000, jpeg[:10])
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert reply.endswith(b'{"error":"the body ended after 10 of 1000 bytes"}')


def test_a_body_that_stops_arriving_is_408(models: Models, jpeg: bytes) -> None:
    with DetectApi(DetectApiSection(port=0), models, timeout_s=0.3) as api:
        port = int(api.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n"
                b"Content-Length: 1000\r\n\r\n" + jpeg[:10]
            )  # and then nothing, with the connection open
            reply = sock.makefile("rb").read()
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert b"the body did not arrive within 0.3 s" in reply


def test_a_body_without_content_length_is_411(api: DetectApi, jpeg: bytes) -> None:
    conn = http.client.HTTPConnection(api.url.removeprefix("http://"), timeout=5)
    try:
        conn.putrequest("POST", "/v1/detect")
        conn.putheader("Content-Type", "image/jpeg")
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 411
        assert json.loads(response.read())["error"].startswith("Content-Length is required")
    finally:
        conn.close()


def test_a_chunked_body_is_411(client: httpx.Client, jpeg: bytes) -> None:
    response = client.post(
        "/v1/detect",
        content=iter([jpeg[:1000], jpeg[1000:]]),
        headers={"Content-Type": "image/jpeg"},
    )
    assert response.status_code == 411
    assert "send Content-Length" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/v1/detect", 405, "POST"),
        ("PUT", "/v1/detect", 405, "POST"),
        ("DELETE", "/v1/detect", 405, "POST"),
        ("POST", "/v1/health", 405, "GET, HEAD"),
        ("POST", "/v2/detect", 404, None),
        ("GET", "/", 404, None),
    ],
)
def test_other_paths_are_404_and_other_methods_405_with_allow(
    client: httpx.Client, method: str, path: str, status: int, allow: str | None
) -> None:
    response = client.request(method, path, content=b"x", headers={"Content-Type": "image/png"})
    assert response.status_code == status
    assert response.headers.get("Allow") == allow
    assert response.json()["error"]


def test_requests_beyond_the_waiting_bound_are_503_with_retry_after(
    client: httpx.Client, api: DetectApi, jpeg: bytes
) -> None:
    for _ in range(MAX_WAITING):
        assert api.waiting.acquire(blocking=False)
    try:
        response = detect(client, jpeg, "image/jpeg")
    finally:
        for _ in range(MAX_WAITING):
            api.waiting.release()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert response.json()["error"].startswith("busy: ")
    assert detect(client, jpeg, "image/jpeg").status_code == 200


def test_an_address_in_use_is_a_detect_api_error(api: DetectApi, models: Models) -> None:
    port = int(api.url.rsplit(":", 1)[1])
    other = DetectApi(DetectApiSection(port=port), models)
    with pytest.raises(DetectApiError, match=rf"\[detect_api\] cannot listen on 127.0.0.1:{port}"):
        other.start()


# --- configuration and status --------------------------------------------------------------


def test_the_section_is_off_and_local_only_by_default() -> None:
    section = settings_from_dict({"device": {"id": "amr-3"}}, source="agent.toml").detect_api
    assert (section.port, section.host, section.max_bytes) == (0, "127.0.0.1", 8 << 20)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"port": 70000}, "agent.toml: detect_api.port: Input should be less than or equal to 6"),
        ({"max_bytes": 100}, "agent.toml: detect_api.max_bytes: Input should be greater than or"),
        ({"host": "0.0.0.0 "}, "agent.toml: detect_api.host: String should match pattern"),
        ({"prot": 8719}, "agent.toml: detect_api.prot: unknown key"),
        ({"port": 9108}, "[detect_api] port 9108 is [metrics] port too"),
    ],
)  # fmt: skip
def test_a_bad_section_names_file_key_and_what_is_allowed(
    section: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"device": {"id": "amr-3"}, "detect_api": section}, source="agent.toml")
    assert message in str(caught.value)


def test_a_bad_section_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[device]\nid = "amr-3"\n[detect_api]\nport = -1\n')
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 2
    assert "detect_api.port" in result.output


def test_the_agent_serves_it_with_its_active_model_and_runs_on_when_the_port_is_taken(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    settings = settings_from_dict(
        {"device": {"id": "amr-3", "data_dir": str(tmp_path)}, "detect_api": {"port": port}},
        source="agent.toml",
    )
    agent, other = Agent(settings), Agent(settings)
    agent._start_detect_api()
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v1/health", timeout=5).json() == {"model": None}
        other._start_detect_api()  # the port is taken now
    finally:
        assert agent.detect_api is not None
        agent.detect_api.close()
    assert agent._detect_api_status == {"url": f"{url}/v1/detect"}
    assert other.detect_api is None
    assert other._detect_api_status is not None
    assert other._detect_api_status["error"].startswith(
        f"[detect_api] cannot listen on 127.0.0.1:{port}"
    )


def test_status_shows_where_the_running_agent_serves_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    config = tmp_path / "agent.toml"
    config.write_text(f'[device]\nid = "amr-3"\ndata_dir = "{data}"\n')
    url = "http://127.0.0.1:8719/v1/detect"
    report = {"pid": os.getpid(), "updated_at": time.time(), "detect_api": {"url": url}}
    (data / "status.json").write_text(json.dumps(report))
    result = CliRunner().invoke(app, ["status", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "detect API" in result.output
    assert url in result.output
