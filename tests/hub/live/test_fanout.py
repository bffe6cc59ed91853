"""`Fanout` and `LiveFeed` without sockets: scope, filters, encode-once, cut-off, sampling."""

from __future__ import annotations

from collections.abc import Iterable

import orjson
import pytest

from hub.bus.base import Record
from hub.live.fanout import Fanout, Subscriber, TooSlow, live_message
from hub.live.feed import LiveFeed


def drain(subscriber: Subscriber) -> list[str]:
    texts = []
    while (text := subscriber.next()) is not None:
        texts.append(text)
    return texts


def test_each_message_is_encoded_once_and_shared_by_every_subscriber() -> None:
    fanout = Fanout()
    a, b = fanout.subscribe(sites=None), fanout.subscribe(sites=frozenset({"plant-a"}))
    message = live_message("state", "amr-7", "plant-a", "t", {"online": True})

    assert fanout.publish(message) == 2
    [got_a], [got_b] = drain(a), drain(b)
    assert got_a is got_b is message.text  # the same object: no per-client encoding
    assert orjson.loads(got_a) == {
        "type": "state",
        "device": "amr-7",
        "site": "plant-a",
        "ts": "t",
        "data": {"online": True},
    }


def test_scope_and_filters_decide_who_gets_what() -> None:
    fanout = Fanout()
    everyone = fanout.subscribe(sites=None)
    plant_a = fanout.subscribe(sites=frozenset({"plant-a"}))
    acks_of_7 = fanout.subscribe(sites=None)
    acks_of_7.types, acks_of_7.devices = frozenset({"ack"}), frozenset({"amr-7"})
    messages = [
        live_message("state", "amr-7", "plant-a", "t", {}),
        live_message("ack", "amr-7", "plant-a", "t", {}),
        live_message("ack", "amr-9", "plant-b", "t", {}),
        live_message("state", "ghost", None, "t", {}),  # a device the hub does not know
    ]
    fanout.publish_many(messages)

    def seen(subscriber: Subscriber) -> list[tuple[str, str]]:
        return [(m["type"], m["device"]) for m in map(orjson.loads, drain(subscriber))]

    assert seen(everyone) == [
        ("state", "amr-7"),
        ("ack", "amr-7"),
        ("ack", "amr-9"),
        ("state", "ghost"),
    ]
    assert seen(plant_a) == [("state", "amr-7"), ("ack", "amr-7")]
    assert seen(acks_of_7) == [("ack", "amr-7")]


def test_a_full_queue_cuts_that_subscriber_off_and_no_other() -> None:
    fanout = Fanout(queue_limit=3)
    slow, fast = fanout.subscribe(sites=None), fanout.subscribe(sites=None)
    received = []
    for n in range(10):
        fanout.publish(live_message("state", f"amr-{n}", None, "t", {}))
        received += drain(fast)

    assert len(received) == 10
    assert fanout.subscribers() == 1
    assert fanout.cut_off == 1
    with pytest.raises(TooSlow, match="too slow: 3 messages behind"):
        slow.next()


class FakeSites:
    def __init__(self, sites: dict[str, str]) -> None:
        self.sites, self.asked = sites, list[set[str]]()

    async def __call__(self, devices: Iterable[str]) -> dict[str, str | None]:
        self.asked.append(set(devices))
        return {d: self.sites.get(d) for d in devices}


def record(topic: str, value: object, *, ts_ms: int = 1_767_225_600_000) -> Record:
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return Record(topic, b"k", raw, 0, 0, ts_ms)


def envelope(device: str, body: object, stream: str = "s1") -> dict[str, object]:
    return {
        "v": 1,
        "device": device,
        "stream": stream,
        "seq": 1,
        "ts": "2026-01-01T00:00:00Z",
        "body": body,
    }


async def test_the_feed_maps_topics_resolves_sites_and_samples_telemetry() -> None:
    now = [100.0]
    sites = FakeSites({"amr-7": "plant-a"})
    feed = LiveFeed(object(), Fanout(), sites, telemetry_hz=2.0, clock=lambda: now[0])  # type: ignore[arg-type]
    cpu = [{"metric": "cpu", "value": v} for v in (1, 2, 3)]
    battery = {"metric": "battery", "value": 80}
    records = [
        record("telemetry.raw", envelope("amr-7", {"points": [cpu[0]]})),
        record("telemetry.raw", envelope("amr-7", {"points": [cpu[1]]})),  # cpu within 0.5 s
        # Another metric in the same half second still goes out: sampling is per metric.
        record("telemetry.raw", envelope("amr-7", {"points": [cpu[1], battery]})),
        record("command.acks", envelope("amr-7", {"cmd_id": "c-1", "status": "done"})),
        record("device.state", envelope("amr-7", {"online": False}, stream="will")),
        record("alerts", {"id": 4, "device": "amr-9", "site": "plant-b", "raised_at": "r"}),
        record("inference.detections", b"not json"),
        record("device.state", ["not", "an", "object"]),
    ]
    messages = [orjson.loads(m.text) for m in await feed.messages(records)]
    now[0] += 0.6
    later = await feed.messages([record("telemetry.raw", envelope("amr-7", {"points": [cpu[2]]}))])

    assert [(m["type"], m["site"]) for m in messages] == [
        ("telemetry", "plant-a"),
        ("telemetry", "plant-a"),
        ("ack", "plant-a"),
        ("state", "plant-a"),
        ("alert", "plant-b"),  # the alert names its site: no lookup
    ]
    assert messages[0]["data"] == {"points": [cpu[0]]}
    assert messages[1]["data"] == {"points": [battery]}
    assert messages[3]["ts"] == "2026-01-01T00:00:00+00:00"  # a will: when the bus got it
    assert (messages[4]["ts"], messages[4]["data"]["id"]) == ("r", 4)
    assert orjson.loads(later[0].text)["data"] == {"points": [cpu[2]]}
    assert (feed.skipped_telemetry, feed.invalid) == (1, 2)
    assert sites.asked == [{"amr-7"}, {"amr-7"}]
