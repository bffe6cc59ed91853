"""Query routes through the app on stored rows: scope, filters, paging, chart downsampling."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from protocol.models import DetectionBatch, Severity
from tests.hub.auth.support import Hub
from tests.hub.queries.support import (
    T0,
    event,
    fleet,
    frame,
    points,
    roll_up,
    store,
)

DEVICE_ROUTES = ("telemetry", "metrics", "detections", "events")


async def test_devices_outside_the_callers_sites_answer_404(hub: Hub) -> None:
    f = await fleet(hub)
    await store(hub, f.mine, [event(T0, "boot")])
    await store(hub, f.theirs, [event(T0, "boot"), event(T0, "dock")])
    for route in DEVICE_ROUTES:
        q = {"metric": "cpu"}
        assert (await f.get("vic", f"/devices/{f.mine}/{route}", **q)).status_code == 200, route
        theirs = await f.get("vic", f"/devices/{f.theirs}/{route}", **q)
        assert theirs.status_code == 404, route
        assert theirs.json()["detail"]["code"] == "device_not_found"
        assert (await f.get("vic", f"/devices/nope/{route}", **q)).status_code == 404
        assert (await f.get("root", f"/devices/{f.theirs}/{route}", **q)).status_code == 200
        anonymous = await hub.client.get(f"/api/v1/devices/{f.mine}/{route}", params=q)
        assert anonymous.status_code == 401
    vic = (await f.get("vic", "/events")).json()["items"]
    root = (await f.get("root", "/events")).json()["items"]
    assert [e["device_id"] for e in vic] == [f.mine]
    assert sorted(e["device_id"] for e in root) == sorted([f.mine, f.theirs, f.theirs])


async def test_raw_telemetry_in_a_range_and_the_metric_names(hub: Hub) -> None:
    f = await fleet(hub)
    await store(hub, f.mine, [*points("cpu", [float(i) for i in range(10)], every_s=60)])
    await store(hub, f.mine, points("temp", [40.0], every_s=1), stream="s2")
    got = await f.get(
        "vic",
        f"/devices/{f.mine}/telemetry",
        metric="cpu",
        resolution="raw",
        **{"from": T0 + timedelta(minutes=2), "to": T0 + timedelta(minutes=5)},
    )
    assert got.status_code == 200, got.text
    body = got.json()
    assert [p["value"] for p in body["points"]] == [2.0, 3.0, 4.0]  # [from, to)
    assert body["resolution"] == "raw"
    assert body["buckets"] == []
    assert not body["truncated"]
    assert body["from"].startswith("2026-01-01T00:02:00")
    names = await f.get("vic", f"/devices/{f.mine}/metrics")
    assert names.json() == {"device_id": f.mine, "metrics": ["cpu", "temp"]}


async def test_auto_downsamples_rollups_to_at_most_max_points_buckets(hub: Hub) -> None:
    f = await fleet(hub)
    values = [math.sin(i / 30) * 50 + (i % 7) for i in range(1080)]  # 3 h, one per 10 s
    await store(hub, f.mine, points("cpu", values, every_s=10))
    end = T0 + timedelta(hours=3)
    await roll_up(hub, end)
    span = {"from": T0, "to": end}
    for max_points in (2, 7, 50, 179):
        got = await f.get(
            "vic", f"/devices/{f.mine}/telemetry", metric="cpu", max_points=max_points, **span
        )
        body = got.json()
        buckets = body["buckets"]
        assert body["resolution"] == "bucketed"
        assert body["points"] == []
        assert 0 < len(buckets) <= max_points, max_points
        assert body["bucket_s"] % 60 == 0
        assert not body["truncated"]
        assert sum(b["count"] for b in buckets) == 1080
        assert all(b["min"] <= b["avg"] <= b["max"] for b in buckets)
        assert min(b["min"] for b in buckets) == min(values)
        assert max(b["max"] for b in buckets) == max(values)
        starts = [b["start"] for b in buckets]
        assert starts == sorted(starts)
    raw = await f.get("vic", f"/devices/{f.mine}/telemetry", metric="cpu", max_points=1080, **span)
    assert raw.json()["resolution"] == "raw"
    assert len(raw.json()["points"]) == 1080


async def test_minute_rollups_and_raw_stop_at_max_points_and_say_so(hub: Hub) -> None:
    f = await fleet(hub)
    await store(hub, f.mine, points("cpu", [1.0, 3.0] * 300, every_s=10))  # 100 minutes
    end = T0 + timedelta(minutes=100)
    await roll_up(hub, end)
    span = {"from": T0, "to": end}
    minutes = await f.get(
        "vic", f"/devices/{f.mine}/telemetry", metric="cpu", resolution="1m", **span
    )
    body = minutes.json()
    assert body["resolution"] == "1m"
    assert body["bucket_s"] == 60
    assert len(body["buckets"]) == 100
    assert body["buckets"][0] == {
        "start": "2026-01-01T00:00:00Z",
        "count": 6,
        "min": 1.0,
        "avg": 2.0,
        "max": 3.0,
    }
    for resolution in ("1m", "raw"):
        cut = await f.get(
            "vic",
            f"/devices/{f.mine}/telemetry",
            metric="cpu",
            resolution=resolution,
            max_points=40,
            **span,
        )
        assert cut.json()["truncated"], resolution
        assert len(cut.json()["points"] or cut.json()["buckets"]) == 40


async def test_detections_filter_by_class_zone_model_and_time(hub: Hub) -> None:
    f = await fleet(hub)
    at = [T0 + timedelta(seconds=s) for s in range(5)]
    frames = [
        frame(at[0], ["person"], {"danger": [0]}),
        frame(at[1], ["person", "forklift"], {"danger": []}),
        frame(at[2], ["forklift"], {"dock": [0]}, model="detr"),
        frame(at[3], [], {}),
        frame(at[4], ["person"], {"dock": [0]}, model="detr"),
    ]
    await store(hub, f.mine, [DetectionBatch(frames=frames)])

    async def times(**params: object) -> list[int]:
        got = await f.get("vic", f"/devices/{f.mine}/detections", **params)
        assert got.status_code == 200, got.text
        return [at.index(_parse(d["ts"])) for d in got.json()["items"]]

    assert await times() == [4, 3, 2, 1, 0]
    assert await times(cls="person") == [4, 1, 0]
    assert await times(cls="forklift") == [2, 1]
    assert await times(zone="danger") == [0]  # frame 1 has the zone but nothing in it
    assert await times(model="detr") == [4, 2]
    assert await times(cls="person", model="yolo") == [1, 0]
    assert await times(**{"from": at[1], "to": at[4]}) == [3, 2, 1]
    one = (await f.get("vic", f"/devices/{f.mine}/detections", cls="forklift")).json()
    assert one["items"][0]["model"]["name"] == "detr"
    assert one["items"][0]["classes"] == ["forklift"]


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def test_pages_have_no_duplicates_or_gaps_even_as_new_events_arrive(hub: Hub) -> None:
    f = await fleet(hub)
    # Ties on purpose: three events share each timestamp, across two streams.
    first = [event(T0 + timedelta(seconds=i // 3), "tick", n=i) for i in range(20)]
    await store(hub, f.mine, first)
    await store(
        hub, f.mine, [event(T0 + timedelta(seconds=i), "tock") for i in range(7)], stream="s2"
    )
    await store(hub, f.theirs, [event(T0, "tick")])
    seen: list[tuple[str, str]] = []
    cursor = None
    for page_no in range(20):
        got = await f.get("root", "/events", limit=4, cursor=cursor)
        body = got.json()
        seen += [(e["ts"], e["device_id"] + str(e["detail"]) + e["type"]) for e in body["items"]]
        if page_no == 1:  # a newer event arriving mid-listing must not shift the pages
            await store(hub, f.theirs, [event(T0 + timedelta(hours=1), "late")], stream="s9")
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 20 + 7 + 1
    assert [ts for ts, _ in seen] == sorted((ts for ts, _ in seen), reverse=True)
    everything = (await f.get("root", "/events", limit=500)).json()["items"]
    assert len(everything) == 29
    assert everything[0]["type"] == "late"
    assert [(e["ts"], e["device_id"] + str(e["detail"]) + e["type"]) for e in everything[1:]] == (
        seen
    )


async def test_event_filters(hub: Hub) -> None:
    f = await fleet(hub)
    await store(
        hub,
        f.mine,
        [
            event(T0, "boot"),
            event(T0 + timedelta(seconds=1), "estop", Severity.CRITICAL),
            event(T0 + timedelta(seconds=2), "estop", Severity.WARNING),
        ],
    )
    path = f"/devices/{f.mine}/events"
    assert [e["severity"] for e in (await f.get("vic", path, type="estop")).json()["items"]] == [
        "warning",
        "critical",
    ]
    critical = (await f.get("vic", "/events", severity="critical")).json()["items"]
    assert [e["type"] for e in critical] == ["estop"]
    late = await f.get("vic", path, **{"from": T0 + timedelta(seconds=1)})
    assert len(late.json()["items"]) == 2


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        (
            "telemetry",
            {"metric": "cpu", "from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"},
            "from",
        ),
        ("telemetry", {"metric": "cpu", "resolution": "5m"}, "resolution"),
        ("telemetry", {"metric": "cpu", "max_points": 1}, "max_points"),
        ("telemetry", {}, "metric"),
        ("telemetry", {"metric": "cpu", "from": "2026-01-01T00:00:00"}, "from"),
        ("events", {"limit": 0}, "limit"),
        ("events", {"limit": 501}, "limit"),
        ("events", {"severity": "fatal"}, "severity"),
        ("events", {"cursor": "not-a-cursor"}, "cursor"),
        ("detections", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
    ],
)
async def test_bad_parameters_answer_422_naming_the_field(
    hub: Hub, route: str, params: dict[str, object], field: str
) -> None:
    f = await fleet(hub)
    got = await f.get("vic", f"/devices/{f.mine}/{route}", **params)
    assert got.status_code == 422, got.text
    assert any(error["loc"][-1] == field for error in got.json()["detail"]), got.text
