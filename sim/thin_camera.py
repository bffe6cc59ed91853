"""A camera-only device: JPEG frames sent for gateway detection, no model, no outbox.

What a plain IP camera behind a small forwarder does (docs/protocol.md, "Devices with
no model"): every frame goes out on the device's own `frames` channel as an envelope
whose body has `purpose: "inference"`, at QoS 1, at a steady rate under the hub's
per-device frame limit. Frames are live data: nothing is buffered or re-sent; a frame
the network loses is simply gone, and the next one follows.

Example:
    camera = ThinCamera("cam-dock", "mqtt://127.0.0.1:1883", render=lambda: image, fps=4)
    sent = await camera.run(frames=100)   # [(frame_id, ts), ...] of the frames published
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiomqtt
import cv2
import numpy as np
import numpy.typing as npt

from protocol import Channel, Envelope, encode, topic
from protocol.models import Frame, FramePurpose

Image = npt.NDArray[np.uint8]


class ThinCamera:
    """Publishes `render()`'s frames as one device's inference frames."""

    def __init__(
        self,
        device: str,
        mqtt_url: str,
        *,
        render: Callable[[], Image],
        fps: float = 4.0,
        camera: str = "default",
        username: str = "",
        password: str = "",
        quality: int = 80,
    ) -> None:
        self.device, self.camera, self.fps, self.quality = device, camera, fps, quality
        self._url, self._render = urlsplit(mqtt_url), render
        self._username, self._password = username or None, password or None
        self.stream = secrets.token_hex(8)
        self.sent: list[tuple[str, datetime]] = []
        """(frame_id, ts) of every frame published, in order."""

    def frame(self, seq: int) -> bytes:
        """The encoded envelope of frame `seq`, taken now."""
        image = self._render()
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ValueError(f"{self.device}: frame {seq} could not be encoded as JPEG")
        now = datetime.now(UTC)
        body = Frame(
            ts=now,
            frame_id=f"{self.device}-{self.stream[:6]}-{seq}",
            camera=self.camera,
            purpose=FramePurpose.INFERENCE,
            width=image.shape[1],
            height=image.shape[0],
            jpeg=jpeg.tobytes(),
        )
        envelope = Envelope(
            device=self.device, stream=self.stream, seq=seq, ts=now, kind=Channel.FRAMES, body=body
        )
        self.sent.append((body.frame_id, now))
        return encode(envelope)

    async def run(self, frames: int | None = None) -> list[tuple[str, datetime]]:
        """Publish at `fps` until `frames` were sent (None: until cancelled)."""
        client = aiomqtt.Client(
            self._url.hostname or "127.0.0.1",
            self._url.port or 1883,
            username=self._username,
            password=self._password,
            identifier=f"thin-{self.device}",
        )
        period = 1.0 / self.fps
        async with client:
            seq, start = 1, time.monotonic()
            while frames is None or seq <= frames:
                payload = await asyncio.to_thread(self.frame, seq)
                await client.publish(topic(self.device, Channel.FRAMES), payload, qos=1)
                await asyncio.sleep(max(0.0, start + seq * period - time.monotonic()))
                seq += 1
        return self.sent
