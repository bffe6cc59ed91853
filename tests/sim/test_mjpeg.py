"""The cameras as IP cameras: MJPEG streams OpenCV and the agent's camera source can read."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import cv2
import numpy as np
import pytest

from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.camera_sources import make_source
from sim.mjpeg import MjpegCameraServer
from sim.render import Randomisation, cameras_for
from sim.scenario import default_scenario
from sim.world import World


@pytest.fixture
def world() -> World:
    return World(default_scenario(robots=1), seed=0)


@pytest.fixture
def server(world: World) -> Iterator[MjpegCameraServer]:
    with MjpegCameraServer(world, cameras_for(world, Randomisation.off()), fps=10) as srv:
        yield srv


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http
        body: bytes = response.read()
        return body


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return np.asarray(image)


def test_opencv_reads_the_stream_like_an_ip_camera(server: MjpegCameraServer) -> None:
    cap = cv2.VideoCapture(server.url("robot-1"), cv2.CAP_FFMPEG)
    try:
        assert cap.isOpened()
        frames = [cap.read() for _ in range(3)]
    finally:
        cap.release()
    assert all(ok for ok, _ in frames)
    assert {img.shape for _, img in frames} == {(240, 320, 3)}


def test_the_agents_camera_source_reads_the_stream(server: MjpegCameraServer) -> None:
    source = make_source(CameraSection(source=server.url("cam-dock")))
    source.open()
    try:
        image = source.read()
    finally:
        source.close()
    assert image is not None
    assert image.shape == (480, 640, 3)


def test_a_snapshot_is_one_jpeg_and_the_index_lists_every_camera(
    server: MjpegCameraServer, world: World
) -> None:
    image = decode(get(server.snapshot_url("cam-aisle")))
    assert image.shape == (480, 640, 3)
    index = json.loads(get(f"http://127.0.0.1:{server.port}/cameras"))
    assert set(index) == set(world.camera_names)
    assert index["robot-1"]["mjpeg"] == server.url("robot-1")


def test_an_unknown_camera_is_not_found(server: MjpegCameraServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        get(f"http://127.0.0.1:{server.port}/cameras/nope.mjpg")
    err.value.close()
    assert err.value.code == 404


def test_frames_are_rendered_at_the_frame_rate_however_many_watch(world: World) -> None:
    cameras = cameras_for(world, Randomisation.off())
    with MjpegCameraServer(world, cameras, fps=5) as srv:
        caps = [cv2.VideoCapture(srv.url("robot-1"), cv2.CAP_FFMPEG) for _ in range(2)]
        try:
            started = time.monotonic()
            for _ in range(5):
                for cap in caps:
                    assert cap.read()[0]
            elapsed = time.monotonic() - started
        finally:
            for cap in caps:
                cap.release()
        rendered = srv.frames_rendered("robot-1")
    # two clients, five frames each, but one render per frame period between them
    assert rendered <= 5 * (elapsed + 0.5) + 2
    assert rendered < 10


def test_a_blacked_out_camera_streams_black(server: MjpegCameraServer, world: World) -> None:
    world.blackout_camera("cam-dock", 60.0)
    time.sleep(0.15)  # past the frame period, so the next frame is rendered anew
    image = decode(get(server.snapshot_url("cam-dock")))
    assert int(image.max()) <= 8  # JPEG ringing at most


def test_stop_cuts_open_streams(world: World) -> None:
    srv = MjpegCameraServer(world, cameras_for(world, Randomisation.off()), fps=10)
    srv.start()
    cap = cv2.VideoCapture(srv.url("robot-1"), cv2.CAP_FFMPEG)
    try:
        assert cap.read()[0]
        srv.stop()
        deadline = time.monotonic() + 5
        while cap.read()[0]:  # buffered frames drain, then the stream ends
            assert time.monotonic() < deadline
    finally:
        cap.release()
