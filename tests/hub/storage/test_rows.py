"""Envelopes become the right rows (pure functions, no database)."""

from __future__ import annotations

from hub.storage.rows import plan_rows
from tests.hub.storage.support import ack, at, detections, event, frame, state, telemetry, will


def test_each_kind_goes_to_its_table_and_every_seq_is_received() -> None:
    plan = plan_rows([telemetry(1, 1.0, 2.0), detections(2), event(3), ack(4), frame(5)])
    assert [len(plan.telemetry), len(plan.detections), len(plan.events), len(plan.acks)] == [
        2,
        2,
        1,
        1,
    ]
    assert [r["seq"] for r in plan.received] == [1, 2, 3, 4, 5]
    assert plan.states == {}


def test_points_and_frames_are_numbered_within_their_batch() -> None:
    plan = plan_rows([telemetry(7, 1.0, 2.0, 3.0), detections(8)])
    assert [(r["seq"], r["idx"]) for r in plan.telemetry] == [(7, 0), (7, 1), (7, 2)]
    assert [(r["seq"], r["idx"], r["frame_id"]) for r in plan.detections] == [
        (8, 0, "f1"),
        (8, 1, "f2"),
    ]


def test_detection_rows_list_the_classes_present_once() -> None:
    first, second = plan_rows([detections(1)]).detections
    assert first["classes"] == ["forklift", "person"]
    assert second["classes"] == []
    assert first["objects"][0] == {
        "cls": "person",
        "conf": 0.9,
        "box": {"x1": 0.1, "y1": 0.1, "x2": 0.4, "y2": 0.5},
    }


def test_only_the_newest_state_per_device_is_kept() -> None:
    plan = plan_rows(
        [
            state(1, ts=at(10), version="a"),
            state(2, ts=at(30), version="c"),
            state(3, ts=at(20), version="b"),
            state(1, ts=at(5), device="amr-2"),
        ]
    )
    assert plan.state_envelopes == 4
    assert {d: r["agent_version"] for d, r in plan.states.items()} == {"amr-1": "c", "amr-2": "1.2"}


def test_a_last_will_is_an_offline_state_row() -> None:
    (row,) = plan_rows([will(ts=at(3))]).states.values()
    assert (row["online"], row["state"], row["state_ts"]) == (False, {"online": False}, at(3))
