"""Gateway mode's own logic (no Kafka): which records become frames, what a frame produces
as the device's own envelopes, and that processing a frame twice names its results the
same. The Kafka path is tested in tests/integration/edge/test_gateway.py."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import numpy.typing as npt
import pytest
from aiokafka import TopicPartition

from edge_agent import cli_runtime
from edge_agent.config import settings_from_dict
from edge_agent.errors import ConfigError
from edge_agent.perception import gateway as gateway_module
from edge_agent.perception.default_model import SHIPPED_MODEL
from edge_agent.perception.detect_api import DetectApi, DetectApiSection
from edge_agent.perception.detector import DetectorOptions
from edge_agent.perception.gateway import (
    EVENTS_PER_FRAME,
    Gateway,
    GatewaySection,
    Output,
    gateway_stream,
)
from edge_agent.perception.pipeline import ActiveModel, PerceptionSection, local_model
from protocol import (
    Channel,
    DetectionBatch,
    DetectReply,
    DetectRequest,
    Envelope,
    Event,
    decode,
    decode_envelope,
    encode,
    is_gateway_stream,
)
from protocol.backoff import Backoff
from protocol.models import Frame, FramePurpose
from tests.edge_agent.sim_scene import encoded, person_and_forklift

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
STREAM = "0123456789abcdef"
WHOLE = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


@pytest.fixture(scope="module")
def shipped() -> ActiveModel:
    return local_model(SHIPPED_MODEL, DetectorOptions())


@pytest.fixture(scope="module")
def scene() -> npt.NDArray[np.uint8]:
    return person_and_forklift()


def frame_record(
    jpeg: bytes,
    *,
    device: str = "cam-dock",
    seq: int = 7,
    age_s: float = 0.1,
    purpose: FramePurpose = FramePurpose.INFERENCE,
) -> bytes:
    ts = NOW - timedelta(seconds=age_s)
    body = Frame(
        ts=ts, frame_id=f"{device}-{seq}", purpose=purpose, width=640, height=480, jpeg=jpeg
    )
    envelope = Envelope(
        device=device, stream=STREAM, seq=seq, ts=ts, kind=Channel.FRAMES, body=body
    )
    return encode(envelope)


def gateway(
    tmp_path: Path, model: ActiveModel | None, perception: PerceptionSection | None = None
) -> Gateway:
    cfg = GatewaySection(enabled=True, bootstrap="127.0.0.1:9", max_age_s=2.0)
    return Gateway(
        cfg,
        perception or PerceptionSection(),
        lambda: model,
        tmp_path,
        device="gw-test",
        clock=NOW.timestamp,
    )


def danger_everywhere() -> PerceptionSection:
    return PerceptionSection.model_validate(
        {
            "zones": [{"name": "danger", "polygon": WHOLE}],
            "rules": [
                {
                    "name": "person-in-danger",
                    "classes": ["person"],
                    "zone": "danger",
                    "min_conf": 0.3,
                    "action": "stop",
                    "severity": "critical",
                }
            ],
        }
    )


def test_an_inference_frame_is_accepted_and_others_are_sorted_out(
    tmp_path: Path, scene: npt.NDArray[np.uint8]
) -> None:
    jpeg = encoded(scene)
    gw = gateway(tmp_path, None)
    job = gw.accept(b"cam-dock", frame_record(jpeg))
    assert job is not None
    assert (job.envelope.device, job.envelope.seq, job.frame.jpeg) == ("cam-dock", 7, jpeg)

    assert gw.accept(b"cam-dock", frame_record(jpeg, age_s=2.5)) is None
    assert gw.counters.stale == 1
    # A robot's snapshot shares the topic: not for detection, and not an error either.
    assert gw.accept(b"cam-dock", frame_record(jpeg, purpose=FramePurpose.SNAPSHOT)) is None
    assert gw.accept(b"other-cam", frame_record(jpeg)) is None  # keyed by another device
    assert gw.accept(b"cam-dock", b"{not json") is None
    assert (gw.counters.stale, gw.counters.refused) == (1, 2)


def test_a_frame_gives_the_devices_own_detections_event_and_snapshot(
    tmp_path: Path, shipped: ActiveModel, scene: npt.NDArray[np.uint8]
) -> None:
    gw = gateway(tmp_path, shipped, danger_everywhere())
    job = gw.accept(b"cam-dock", frame_record(encoded(scene), seq=7))
    assert job is not None
    outputs = gw.process(job)
    assert outputs is not None
    envelopes = {decode_envelope(o.value).kind: (o, decode_envelope(o.value)) for o in outputs}
    assert set(envelopes) == {Channel.DETECTIONS, Channel.EVENTS, Channel.FRAMES}
    for out, envelope in envelopes.values():
        assert out.key == b"cam-dock"
        assert envelope.device == "cam-dock"
        assert is_gateway_stream(envelope.stream)
        assert envelope.stream == gateway_stream(envelope.kind, STREAM)

    out, detections = envelopes[Channel.DETECTIONS]
    assert out.topic == "inference.detections"
    assert detections.seq == 7
    assert isinstance(detections.body, DetectionBatch)
    [result] = detections.body.frames
    assert result.frame_id == "cam-dock-7"
    assert "person" in {o.cls for o in result.objects}
    assert result.model.sha256 == shipped.ref.sha256

    out, event = envelopes[Channel.EVENTS]
    assert out.topic == "system.events"
    assert event.seq == 7 * EVENTS_PER_FRAME
    assert isinstance(event.body, Event)
    assert (event.body.type, event.body.severity) == ("rule_fired", "critical")

    out, snapshot = envelopes[Channel.FRAMES]
    assert out.topic == "inference.frames"
    assert isinstance(snapshot.body, Frame)
    assert snapshot.body.purpose is FramePurpose.SNAPSHOT  # never detected on again
    assert gw.accept(out.key, out.value) is None
    assert (gw.counters.frames, gw.counters.devices) == (1, {"cam-dock"})


def test_a_frame_processed_twice_names_its_results_the_same(
    tmp_path: Path, shipped: ActiveModel, scene: npt.NDArray[np.uint8]
) -> None:
    """A gateway killed between producing and committing: the next one redoes the frame,
    and the writer's (device, stream, seq) key stores it once."""
    record = frame_record(encoded(scene), seq=41)
    keys = []
    for data_dir in (tmp_path / "a", tmp_path / "b"):  # two gateways, each its own state
        gw = gateway(data_dir, shipped, danger_everywhere())
        job = gw.accept(b"cam-dock", record)
        assert job is not None
        outputs = gw.process(job)
        assert outputs is not None
        envelopes = [decode_envelope(o.value) for o in outputs]
        keys.append(sorted((e.kind.value, e.device, e.stream, e.seq) for e in envelopes))
    assert keys[0] == keys[1]


def test_no_model_leaves_the_frame_unprocessed_and_counted(
    tmp_path: Path, scene: npt.NDArray[np.uint8]
) -> None:
    gw = gateway(tmp_path, None)
    job = gw.accept(b"cam-dock", frame_record(encoded(scene)))
    assert job is not None
    assert gw.process(job) is None
    assert gw.counters.unprocessed == 1


def test_a_frame_that_is_not_a_picture_is_refused(tmp_path: Path, shipped: ActiveModel) -> None:
    gw = gateway(tmp_path, shipped)
    job = gw.accept(b"cam-dock", frame_record(b"\xff\xd8 not really a jpeg"))
    assert job is not None
    assert gw.process(job) is None
    assert gw.counters.refused == 1


def test_long_device_streams_still_fit_the_stream_grammar() -> None:
    name = gateway_stream(Channel.DETECTIONS, "s" * 64)
    assert len(name) <= 64
    assert is_gateway_stream(name)
    assert name == gateway_stream(Channel.DETECTIONS, "s" * 64)
    assert name != gateway_stream(Channel.DETECTIONS, "t" * 64)


def test_gateway_enabled_without_kafka_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(
            {"device": {"id": "gw-1", "data_dir": str(tmp_path)}, "gateway": {"enabled": True}},
            source="agent.toml",
        )
    assert "[gateway] enabled needs bootstrap" in str(caught.value)
    assert "gateway" in str(caught.value)


def test_a_gateways_zones_may_name_its_devices_cameras(tmp_path: Path) -> None:
    """A gateway has no [[cameras]] of its own: its zones name its devices' cameras."""
    settings = settings_from_dict(
        {
            "device": {"id": "gw-1", "data_dir": str(tmp_path)},
            "gateway": {"enabled": True, "bootstrap": "kafka:9092"},
            "perception": {"zones": [{"name": "danger", "polygon": WHOLE, "camera": "dock"}]},
        },
        source="agent.toml",
    )
    assert settings.gateway.bootstrap == "kafka:9092"


def detect_request(image: bytes, *, deadline_s: float = 5.0, kind: str = "image/jpeg") -> bytes:
    deadline = NOW + timedelta(seconds=deadline_s)
    return encode(DetectRequest(id="r1", content_type=kind, image=image, deadline=deadline))


def test_a_routed_detect_request_gets_the_detect_apis_answer(
    tmp_path: Path, shipped: ActiveModel, scene: npt.NDArray[np.uint8]
) -> None:
    gw = gateway(tmp_path, shipped)
    jpeg = encoded(scene)
    out = gw.answer(detect_request(jpeg))
    assert out is not None
    assert (out.topic, out.key) == ("inference.replies", b"r1")
    reply = decode(out.value, DetectReply)
    assert (reply.id, reply.gateway, reply.status) == ("r1", "gw-test", 200)
    expected = DetectApi(DetectApiSection(), lambda: shipped).detect(jpeg, "image/jpeg")
    assert reply.body["objects"] == expected.body["objects"]

    bad = gw.answer(detect_request(b"GIF89a", kind="image/png"))
    assert bad is not None
    assert decode(bad.value, DetectReply).status == 400
    assert gw.answer(detect_request(jpeg, deadline_s=-1)) is None  # its caller gave up
    assert gw.answer(b"nonsense") is None
    assert (gw.counters.requests, gw.counters.stale, gw.counters.refused) == (2, 1, 1)


def test_a_batch_answers_requests_first_and_skips_stale_frames(
    tmp_path: Path, shipped: ActiveModel, scene: npt.NDArray[np.uint8]
) -> None:
    gw = gateway(tmp_path, shipped)
    jpeg = encoded(scene)
    frames = "inference.frames"
    batch = [
        (frames, b"cam-dock", frame_record(jpeg, seq=1)),
        (frames, b"cam-dock", frame_record(jpeg, seq=2, age_s=9)),  # stale
        ("inference.requests", b"r1", detect_request(jpeg)),
        (frames, b"cam-dock", frame_record(jpeg, seq=3)),
    ]
    outputs = gw.work(batch)
    assert [o.topic for o in outputs] == [
        "inference.replies",
        "inference.detections",
        "inference.detections",
    ]
    assert [decode_envelope(o.value).seq for o in outputs[1:]] == [1, 3]
    assert (gw.counters.frames, gw.counters.stale, gw.counters.requests) == (2, 1, 1)


def test_status_shows_what_the_gateway_did() -> None:
    line = cli_runtime._gateway(
        {
            "connected": True,
            "frames": 12,
            "devices": 3,
            "stale": 2,
            "refused": 1,
            "unprocessed": 0,
            "requests": 4,
        }
    )
    assert line == (
        "connected to Kafka; 12 frames from 3 devices, 2 stale, 1 refused, 0 without a model; "
        "4 detect requests from the hub"
    )
    assert "Kafka unreachable" in cli_runtime._gateway({"connected": False})
    assert cli_runtime._gateway(None) == "off"


class FakeConsumer:
    """Hands out the given batches, then nothing; records what was committed, and when."""

    def __init__(self, batches: list[list[SimpleNamespace]], log: list[str]) -> None:
        self.batches, self.log = batches, log
        self.commits = len(batches)
        self.all_committed = asyncio.Event()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def getmany(self, **_kw: object) -> dict[str, list[SimpleNamespace]]:
        if not self.batches:
            await asyncio.sleep(0.01)
            return {}
        return {"tp": self.batches.pop(0)}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.log.append(f"commit {sorted((tp.partition, at) for tp, at in offsets.items())}")
        self.commits -= 1
        if not self.commits:
            self.all_committed.set()


class SlowProducer:
    """Acknowledges each send only after `ack_s`: a Kafka round trip the detection must
    not wait for."""

    def __init__(self, ack_s: float, log: list[str]) -> None:
        self.ack_s, self.log = ack_s, log

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, topic: str, *, value: bytes, key: bytes | None) -> asyncio.Future[None]:
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        seq = decode_envelope(value).seq
        asyncio.get_running_loop().call_later(self.ack_s, acked.set_result, None)
        acked.add_done_callback(lambda _f: self.log.append(f"acked {seq}"))
        return acked


async def test_detection_goes_on_while_the_last_batch_is_acknowledged_and_commits_in_order(
    tmp_path: Path,
    shipped: ActiveModel,
    scene: npt.NDArray[np.uint8],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jpeg = encoded(scene)
    log: list[str] = []

    def record(seq: int, partition: int) -> SimpleNamespace:
        value = frame_record(jpeg, seq=seq)
        return SimpleNamespace(
            topic="inference.frames", partition=partition, offset=100 + seq, key=b"cam-dock",
            value=value,
        )  # fmt: skip

    batches = [[record(1, 0), record(2, 1)], [record(3, 0)], [record(4, 1)]]
    consumer, producer = FakeConsumer(batches, log), SlowProducer(0.3, log)
    monkeypatch.setattr(gateway_module, "_clients", lambda _cfg: (consumer, producer))
    gw = gateway(tmp_path, shipped)
    original = gw.work

    def work(records: Sequence[tuple[str, bytes | None, bytes | None]]) -> list[Output]:
        log.append(f"detect {[decode_envelope(v or b'').seq for _t, _k, v in records]}")
        return original(records)

    gw.work = work  # type: ignore[method-assign]
    task = asyncio.create_task(gw._session(Backoff(0.1, 1.0)))
    try:
        await asyncio.wait_for(consumer.all_committed.wait(), 20)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    # Batch 2 was detected on before batch 1's results were acknowledged...
    assert log.index("detect [3]") < log.index("acked 1")
    # ...and each batch's offsets were committed only after its own results, in order.
    commits = [line for line in log if line.startswith("commit")]
    assert commits == ["commit [(0, 102), (1, 103)]", "commit [(0, 104)]", "commit [(1, 105)]"]
    assert log.index("acked 2") < log.index("commit [(0, 102), (1, 103)]")
    assert log.index("acked 3") < log.index("commit [(0, 104)]")
