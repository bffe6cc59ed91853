"""Gateway mode: detection for devices that run no model of their own.

A thin device (a plain IP camera, a gateway that only forwards frames) sends JPEG
frames with purpose `inference` on its MQTT `frames` channel; the hub's ingest puts
them on the Kafka topic `inference.frames`, keyed by device. An agent with
`[gateway] enabled = true` joins a Kafka consumer group on that topic, so several
gateway agents share the devices partition by partition, and runs every frame through
the same `FramePipeline` its own cameras use (one per device and camera: zones, rules
and drift windows are kept per device, all from this agent's `[perception]`).

What a frame produces goes back to Kafka as envelopes *of the originating device*
(`inference.detections`, `system.events`, `telemetry.raw` for drift, `inference.frames`
for snapshots), so the hub's writers, alerts, dashboards and drift reports treat them
like any device's own.

Delivery is at least once and idempotent: the results of a batch of frames are
acknowledged by Kafka (`acks=all`) before the batch's offsets are committed, and each
result's `(device, stream, seq)` follows from the frame's own `(stream, seq)`, so a
frame processed twice (a gateway killed after producing, before committing) is stored
once. Streams start with `gw-` (`protocol.GATEWAY_STREAM_PREFIX`) and have no watermark.

Staleness: a frame older than `max_age_s` when its turn comes is dropped and counted
(`stale`), never processed late: after a gateway dies its devices wait for the group to
rebalance, and the frames of those seconds are worth nothing to a live view.

Example:
    gateway = Gateway(settings.gateway, settings.perception, agent.active_model, data_dir)
    await gateway.run()   # until cancelled; `gateway.counters` says what it did
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Self

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge_agent.perception.camera import CameraFrame
from edge_agent.perception.camera_config import CameraSection
from edge_agent.perception.detect_api import DetectApi, DetectApiSection
from edge_agent.perception.pipeline import (
    FramePipeline,
    ModelProvider,
    PerceptionSection,
    Processed,
)
from edge_agent.sections import PositiveSeconds, Section
from protocol import (
    BUS_TOPIC_BY_CHANNEL,
    DETECT_REPLIES_TOPIC,
    DETECT_REQUESTS_TOPIC,
    GATEWAY_STREAM_PREFIX,
    Channel,
    DecodeError,
    DetectionBatch,
    DetectReply,
    DetectRequest,
    Envelope,
    TelemetryBatch,
    decode,
    decode_envelope,
    encode,
)
from protocol.backoff import Backoff
from protocol.models import Frame, FramePurpose

if TYPE_CHECKING:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

logger = logging.getLogger(__name__)

EVENTS_PER_FRAME = 64
"""Rule events one frame may produce; their seqs are `frame seq * 64 + i`."""


class GatewaySection(Section):
    """`[gateway]`: detect on the `inference.frames` of devices with no model."""

    enabled: bool = False
    bootstrap: str = ""
    """The hub's Kafka, `host:port[,host:port…]` (its `[bus] bootstrap`)."""
    topic_prefix: str = ""
    """The hub's `[bus] topic_prefix`."""
    group: Annotated[str, Field(min_length=1, max_length=200)] = "outpost-gateways"
    """Kafka consumer group; gateway agents in one group share the devices."""
    max_age_s: PositiveSeconds = 2.0
    """Frames older than this when their turn comes are dropped (and counted), not processed."""
    max_frames: Annotated[int, Field(ge=1, le=500)] = 8
    """Frames taken from Kafka at a time; their results are committed together."""
    timeout_s: PositiveSeconds = 10.0
    """Longest wait for Kafka to answer (start, produce, commit) before retrying."""

    @model_validator(mode="after")
    def _bootstrap_when_enabled(self) -> Self:
        if self.enabled and not self.bootstrap.strip():
            raise ValueError(
                "[gateway] enabled needs bootstrap: the hub's Kafka as host:port (its [bus] "
                "bootstrap)"
            )
        return self


@dataclass
class GatewayCounters:
    """What the gateway did since start (in `edge-agent status` and the metrics)."""

    frames: int = 0
    """Frames detected on."""
    stale: int = 0
    """Frames dropped for being older than `max_age_s`."""
    refused: int = 0
    """Records that were not a readable inference frame of the device they are keyed by."""
    unprocessed: int = 0
    """Frames that came while no model was active."""
    results: int = 0
    """Envelopes produced for the devices."""
    requests: int = 0
    """Detect requests the hub routed here, answered."""
    devices: set[str] = field(default_factory=set)

    def snapshot(self) -> dict[str, int]:
        """The counters as plain numbers."""
        return {
            "frames": self.frames,
            "stale": self.stale,
            "refused": self.refused,
            "unprocessed": self.unprocessed,
            "results": self.results,
            "requests": self.requests,
            "devices": len(self.devices),
        }


@dataclass(frozen=True)
class FrameJob:
    """One accepted inference frame: the device's envelope and its decoded picture."""

    envelope: Envelope
    frame: Frame


@dataclass(frozen=True)
class Output:
    """One envelope to produce: its topic (without prefix), key and bytes."""

    topic: str
    key: bytes
    value: bytes


def gateway_stream(kind: Channel, device_stream: str) -> str:
    """The stream a gateway writes `kind` results in for frames of `device_stream`: the same
    whichever gateway processes the frame, so a frame processed twice is stored once.

    Example:
        >>> gateway_stream(Channel.DETECTIONS, "a1b2c3d4e5f60718")
        'gw-detections-a1b2c3d4e5f60718'
    """
    name = f"{GATEWAY_STREAM_PREFIX}{kind.value}-{device_stream}"
    if len(name) <= 64:
        return name
    digest = hashlib.blake2b(device_stream.encode(), digest_size=12).hexdigest()
    return f"{GATEWAY_STREAM_PREFIX}{kind.value}-{digest}"


def outputs(origin: Envelope, processed: Processed, cfg: PerceptionSection) -> list[Output]:
    """The envelopes of one processed frame, as the device's own: detections (when objects
    were found or `send_empty_frames`), one event per rule hit, drift points, a snapshot."""
    seq, device, ts = origin.seq, origin.device, origin.ts
    out: list[Output] = []

    def add(kind: Channel, n: int, body: Any) -> None:
        envelope = Envelope(
            device=device,
            stream=gateway_stream(kind, origin.stream),
            seq=n,
            ts=ts,
            kind=kind,
            body=body,
        )
        out.append(Output(BUS_TOPIC_BY_CHANNEL[kind], device.encode(), encode(envelope)))

    if processed.result.objects or cfg.send_empty_frames:
        add(Channel.DETECTIONS, seq, DetectionBatch(frames=[processed.result]))
    for i, hit in enumerate(processed.hits[:EVENTS_PER_FRAME]):
        add(Channel.EVENTS, seq * EVENTS_PER_FRAME + i, hit.event())
    if processed.drift:
        add(Channel.TELEMETRY, seq, TelemetryBatch(points=processed.drift))
    if processed.snapshot is not None:
        add(Channel.FRAMES, seq, processed.snapshot)
    return out


class Gateway:
    """Consumes `inference.frames`, detects, produces the devices' results."""

    def __init__(
        self,
        cfg: GatewaySection,
        perception: PerceptionSection,
        models: ModelProvider,
        data_dir: Path,
        *,
        device: str = "gateway",
        clock: Callable[[], float] = time.time,
    ) -> None:
        # Capture stores frames for the agent's own `capture` command; a gateway's devices
        # have no such command, so their frames are not captured here.
        self.cfg = cfg
        self.perception = perception.model_copy(
            update={"capture": perception.capture.model_copy(update={"enabled": False})}
        )
        self._models, self._data_dir, self._clock = models, data_dir, clock
        self.device = device
        self._api = DetectApi(DetectApiSection(), models)  # its detection, not its server
        self._pipelines: dict[tuple[str, str], FramePipeline] = {}
        self.counters = GatewayCounters()
        self.connected = False

    def accept(self, key: bytes | None, value: bytes | None) -> FrameJob | None:
        """The frame of one record, or None (counted) when it is not one to detect on now."""
        try:
            envelope = decode_envelope(value or b"")
        except DecodeError as exc:
            self._refuse(f"undecodable record: {str(exc)[:200]}")
            return None
        body = envelope.body
        if not isinstance(body, Frame) or body.purpose is not FramePurpose.INFERENCE:
            return None  # snapshots and captures share the topic: not ours to detect on
        if key is not None and key != envelope.device.encode():
            self._refuse(f"record keyed {key[:64]!r} holds a frame of {envelope.device}")
            return None
        age = self._clock() - body.ts.timestamp()
        if age > self.cfg.max_age_s:
            self.counters.stale += 1
            return None
        return FrameJob(envelope, body)

    def process(self, job: FrameJob) -> list[Output] | None:
        """Detect on one frame (blocks: run it off the event loop); None without a model."""
        image = cv2.imdecode(np.frombuffer(job.frame.jpeg, np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            self._refuse(f"frame {job.frame.frame_id} of {job.envelope.device} is not a JPEG")
            return None
        pipeline = self._pipeline(job.envelope.device, job.frame.camera)
        camera_frame = CameraFrame(
            image=np.asarray(image, np.uint8),
            seq=job.envelope.seq,
            frame_id=job.frame.frame_id,
            ts=job.frame.ts,
            camera=job.frame.camera,
        )
        processed = pipeline.process(camera_frame)
        if processed is None:
            self.counters.unprocessed += 1
            return None
        self.counters.frames += 1
        self.counters.devices.add(job.envelope.device)
        return outputs(job.envelope, processed, self.perception)

    def answer(self, value: bytes | None) -> Output | None:
        """The reply to one detect request the hub routed here (blocks: detection), or None
        when it is unreadable (refused) or its caller has given up (stale)."""
        try:
            request = decode(value or b"", DetectRequest)
        except DecodeError as exc:
            self._refuse(f"undecodable detect request: {str(exc)[:200]}")
            return None
        if request.deadline.timestamp() < self._clock():
            self.counters.stale += 1
            return None
        answer = self._api.detect(request.image, request.content_type)
        self.counters.requests += 1
        reply = DetectReply(
            id=request.id, gateway=self.device, status=answer.status, body=answer.body
        )
        return Output(DETECT_REPLIES_TOPIC, request.id.encode(), encode(reply))

    def _pipeline(self, device: str, camera: str) -> FramePipeline:
        pipeline = self._pipelines.get((device, camera))
        if pipeline is None:
            section = CameraSection(name=camera, source="0")  # names the camera; never opened
            pipeline = FramePipeline(section, self.perception, self._models, self._data_dir)
            self._pipelines[(device, camera)] = pipeline
        return pipeline

    def _refuse(self, reason: str) -> None:
        self.counters.refused += 1
        if self.counters.refused <= 10 or self.counters.refused % 1000 == 0:
            logger.warning("gateway: %s (%d refused so far)", reason, self.counters.refused)

    async def run(self) -> None:
        """Consume, detect and produce until cancelled; Kafka being away is retried with
        backoff (frames meanwhile age out on the hub's side, nothing piles up here)."""
        backoff = Backoff(initial=0.5, maximum=30.0)
        while True:
            try:
                await self._session(backoff)
            except (OSError, TimeoutError, _KafkaFailure) as exc:
                self.connected = False
                delay = backoff.next()
                logger.warning("gateway: Kafka %s; retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def _session(self, backoff: Backoff) -> None:
        consumer, producer = _clients(self.cfg)
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                await producer.start()
                await consumer.start()
        except Exception as exc:
            await _close(consumer, producer)
            raise _KafkaFailure(f"unreachable at {self.cfg.bootstrap}: {exc}") from exc
        self.connected = True
        backoff.reset()
        logger.info(
            "gateway: consuming %s%s as group %s",
            self.cfg.topic_prefix, BUS_TOPIC_BY_CHANNEL[Channel.FRAMES], self.cfg.group,
        )  # fmt: skip
        delivering: asyncio.Task[None] | None = None
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=self.cfg.max_frames)
                records = [r for rs in batch.values() for r in rs]
                if not records:
                    continue
                work = [(r.topic, r.key, r.value) for r in records]
                outs = await asyncio.to_thread(self.work, work)
                # The previous batch was delivered while this one was detected on: batches are
                # acknowledged and committed in order, and detection never waits on Kafka.
                if delivering is not None:
                    await delivering
                delivering = asyncio.create_task(
                    self._deliver(outs, next_offsets(records), producer, consumer)
                )
        finally:
            self.connected = False
            if delivering is not None:  # uncommitted: its frames come again, stored once
                delivering.cancel()
                await asyncio.gather(delivering, return_exceptions=True)
            await _close(consumer, producer)

    def work(self, records: Sequence[tuple[str, bytes | None, bytes | None]]) -> list[Output]:
        """The outputs of a batch of `(topic, key, value)` records: detect requests answered,
        then fresh frames detected on, in order. Blocks: run it off the event loop, one thread
        hop per batch rather than per frame."""
        requests = self.cfg.topic_prefix + DETECT_REQUESTS_TOPIC
        out: list[Output] = []
        # Detect requests first: their callers are waiting on the other end.
        for topic, key, value in sorted(records, key=lambda r: r[0] != requests):
            if topic == requests:
                reply = self.answer(value)
                out.extend([reply] if reply is not None else [])
            elif (job := self.accept(key, value)) is not None:
                out.extend(self.process(job) or [])
        return out

    async def _deliver(
        self,
        outs: Sequence[Output],
        offsets: dict[tuple[str, int], int],
        producer: AIOKafkaProducer,
        consumer: AIOKafkaConsumer,
    ) -> None:
        """Produce a batch's results and, once Kafka acknowledged every one, commit the
        batch's offsets (`offsets`: the next offset to read per topic and partition)."""
        sent: list[asyncio.Future[Any]] = []
        for out in outs:
            topic = self.cfg.topic_prefix + out.topic
            sending = producer.send(topic, value=out.value, key=out.key)
            sent.append(await self._guard("producing results", sending))
        if sent:
            await self._guard("producing results", asyncio.gather(*sent))
            self.counters.results += len(sent)
        await self._guard("committing offsets", consumer.commit(_partitions(offsets)))

    async def _guard(self, what: str, work: Any) -> Any:
        """Await one Kafka call within `timeout_s`; its failure ends the session."""
        try:
            async with asyncio.timeout(self.cfg.timeout_s):
                return await work
        except TimeoutError as exc:
            raise _KafkaFailure(f"{what} timed out after {self.cfg.timeout_s:g} s") from exc
        except Exception as exc:
            if _is_kafka_error(exc):
                raise _KafkaFailure(f"{what} failed: {exc}") from exc
            raise


def next_offsets(records: Sequence[Any]) -> dict[tuple[str, int], int]:
    """(topic, partition) → the offset after the last of `records` there: what to commit.

    >>> from types import SimpleNamespace as R
    >>> next_offsets([R(topic="f", partition=0, offset=7), R(topic="f", partition=0, offset=9),
    ...               R(topic="f", partition=2, offset=3)])
    {('f', 0): 10, ('f', 2): 4}
    """
    out: dict[tuple[str, int], int] = {}
    for record in records:
        key = (record.topic, record.partition)
        out[key] = max(out.get(key, 0), record.offset + 1)
    return out


def _partitions(offsets: dict[tuple[str, int], int]) -> dict[Any, int]:
    from aiokafka import TopicPartition

    return {TopicPartition(topic, partition): at for (topic, partition), at in offsets.items()}


class _KafkaFailure(Exception):
    """Kafka could not be reached or did not answer in time: the session is retried."""


def _is_kafka_error(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError

    return isinstance(exc, KafkaError)


def _clients(cfg: GatewaySection) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
    """The group consumer of the frames topic and the results producer."""
    try:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("gateway mode needs aiokafka: pip install 'outpost[gateway]'") from exc
    frames = cfg.topic_prefix + BUS_TOPIC_BY_CHANNEL[Channel.FRAMES]
    consumer = AIOKafkaConsumer(
        frames,
        cfg.topic_prefix + DETECT_REQUESTS_TOPIC,
        bootstrap_servers=cfg.bootstrap,
        group_id=cfg.topic_prefix + cfg.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 << 20,
        fetch_max_wait_ms=100,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        request_timeout_ms=int(cfg.timeout_s * 1000) + 5_000,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=cfg.bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=int(cfg.timeout_s * 1000),
    )
    return consumer, producer


async def _close(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
    """Stop both clients. aiokafka can raise a `CancelledError` of its own from `stop()`;
    only a cancellation of this task may end it (else the gateway would vanish silently)."""
    for client in (consumer, producer):
        try:
            async with asyncio.timeout(5):
                await client.stop()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            logger.warning("gateway: stopping a Kafka client was interrupted inside aiokafka")
        except Exception as exc:
            logger.debug("gateway: closing a Kafka client: %s", exc)
