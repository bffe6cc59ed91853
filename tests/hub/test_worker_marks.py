"""The writer's watermarks: a batch's marks go out together, not one broker round trip each."""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import aiomqtt

from hub.bus.memory import InMemoryBus
from hub.settings import HubSettings
from hub.worker import Writer
from protocol import Watermark, decode


class SlowBroker:
    """Acknowledges each publish after `rtt_s`, as a loaded broker would."""

    def __init__(self, rtt_s: float) -> None:
        self.rtt_s = rtt_s
        self.published: list[tuple[str, bytes]] = []

    async def publish(self, topic: str, payload: bytes, *, qos: int) -> None:
        await asyncio.sleep(self.rtt_s)
        self.published.append((topic, payload))


async def test_a_batch_of_watermarks_costs_one_round_trip_not_one_per_device() -> None:
    writer = Writer(HubSettings(), InMemoryBus(), cast(Any, None))
    broker = SlowBroker(0.2)
    marks = {(f"dev-{n}", "s"): 100 + n for n in range(20)}
    marks[("dev-new", "s")] = 0  # nothing stored contiguously yet: no mark to send
    started = time.monotonic()
    await writer._publish_marks(cast(aiomqtt.Client, broker), marks)
    took = time.monotonic() - started
    assert took < 1.0, f"{took:.2f} s for 20 marks at 0.2 s each: sent one after another"
    sent = {decode(payload, Watermark) for _topic, payload in broker.published}
    assert {(m.device, m.seq) for m in sent} == {(f"dev-{n}", 100 + n) for n in range(20)}
    assert {t for t, _ in broker.published} == {f"outpost/v1/dev-{n}/ingested" for n in range(20)}
    assert writer.counters.watermarks == 20
