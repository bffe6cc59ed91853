"""Zones: polygon validation and which objects stand in which zone."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from edge_agent.perception.zones import ZoneIndex, ZoneSection, zone_members
from protocol import Box, DetectedObject, FrameResult, ModelRef

DANGER = [(0.2, 0.5), (0.8, 0.5), (0.8, 1.0), (0.2, 1.0)]
# an L: the square (0.5..1, 0..0.5) is cut out
CORNER = [(0.9, 0.0), (1.0, 0.0), (1.0, 0.1), (0.9, 0.1)]
L_SHAPE = [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]


def obj(x1: float, y1: float, x2: float, y2: float, cls: str = "person") -> DetectedObject:
    return DetectedObject(cls=cls, conf=0.9, box=Box(x1=x1, y1=y1, x2=x2, y2=y2))


def at(x: float, y: float) -> DetectedObject:
    """A zero-size box: both anchors are (x, y)."""
    return obj(x, y, x, y)


@pytest.mark.parametrize(
    ("polygon", "message"),
    [
        ([(0, 0), (1, 1), (1, 0), (0, 0.5)], "zone 'dock': edges 0 and 2 cross"),
        ([(0, 0), (0.5, 0.5), (1, 1)], "zone 'dock': polygon has no area"),
        ([(0, 0), (1, 0), (1, 0), (0, 1)], "zone 'dock': repeated consecutive point"),
        # a vertex touching another edge is refused like a crossing
        ([(0, 0), (1, 0), (1, 1), (0.5, 0), (0, 1)], "zone 'dock': edges 0 and 2 cross"),
        ([(0, 0), (1, 0)], "at least 3"),
        ([(0, 0), (1.5, 0), (0, 1)], "less than or equal to 1"),
    ],
)
def test_unusable_polygons_are_refused(polygon, message):
    with pytest.raises(ValidationError, match=message):
        ZoneSection(name="dock", polygon=polygon)


def test_bottom_anchor_counts_the_feet_and_center_anchor_the_middle():
    standing = obj(0.4, 0.1, 0.6, 0.7)  # head above the zone, feet in it
    floor = ZoneSection(name="floor", polygon=DANGER)
    mid = ZoneSection(name="mid", polygon=DANGER, anchor="center")
    assert zone_members([standing], [floor, mid]) == {"floor": [0]}
    sitting = obj(0.4, 0.55, 0.6, 0.7)
    assert zone_members([sitting], [floor, mid]) == {"floor": [0], "mid": [0]}


def test_a_person_cut_off_by_the_frame_bottom_is_inside_a_zone_drawn_to_the_edge():
    assert zone_members([obj(0.3, 0.4, 0.5, 1.0)], [ZoneSection(name="d", polygon=DANGER)]) == {
        "d": [0]
    }


def test_concave_zone_excludes_its_notch():
    zone = [ZoneSection(name="l", polygon=L_SHAPE)]
    objects = [at(0.75, 0.25), at(0.25, 0.25), at(0.75, 0.75), at(0.5, 0.25)]
    assert zone_members(objects, zone) == {"l": [1, 2, 3]}  # (0.5, 0.25) is on an edge


def test_members_feed_frame_result_and_leave_empty_zones_out():
    index = ZoneIndex(
        [ZoneSection(name="danger", polygon=DANGER), ZoneSection(name="empty", polygon=CORNER)]
    )
    objects = [at(0.75, 0.25), obj(0.3, 0.6, 0.4, 0.9)]
    zones = index.members(objects)
    assert zones == {"danger": [1]}
    result = FrameResult(
        ts=datetime(2026, 1, 1, tzinfo=UTC),
        frame_id="f",
        model=ModelRef(name="m", version="1", sha256="0" * 64),
        objects=objects,
        latency_ms=1.0,
        zones=zones,
    )
    assert result.zones == {"danger": [1]}
    assert index.members([]) == {}
    assert ZoneIndex([]).members(objects) == {}


# --- property: ray casting agrees with an independent winding-number reference ------------


@st.composite
def star_polygons(draw: st.DrawFn) -> list[tuple[float, float]]:
    """Simple polygons: vertices at increasing angles around (0.5, 0.5), jittered radii."""
    n = draw(st.integers(3, 12))
    step = 2 * math.pi / n
    jitter = st.floats(-0.45, 0.45)
    angles = [step * (i + draw(jitter)) for i in range(n)]
    radii = [draw(st.floats(0.05, 0.45)) for _ in range(n)]
    return [
        (round(0.5 + r * math.cos(a), 6), round(0.5 + r * math.sin(a), 6))
        for a, r in zip(angles, radii, strict=True)
    ]


def winding_inside(p: tuple[float, float], polygon: list[tuple[float, float]]) -> bool:
    total = 0.0
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        ax, ay, bx, by = x1 - p[0], y1 - p[1], x2 - p[0], y2 - p[1]
        total += math.atan2(ax * by - ay * bx, ax * bx + ay * by)
    return abs(total) > math.pi


def distance_to_edges(p: tuple[float, float], polygon: list[tuple[float, float]]) -> float:
    best = math.inf
    for (x1, y1), (x2, y2) in zip(polygon, polygon[1:] + polygon[:1], strict=True):
        dx, dy = x2 - x1, y2 - y1
        t = max(0.0, min(1.0, ((p[0] - x1) * dx + (p[1] - y1) * dy) / (dx * dx + dy * dy)))
        best = min(best, math.hypot(p[0] - x1 - t * dx, p[1] - y1 - t * dy))
    return best


@settings(max_examples=150, deadline=None)
@given(
    polygon=star_polygons(),
    points=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=30),
)
def test_membership_matches_a_winding_number_reference(polygon, points):
    index = ZoneIndex([ZoneSection(name="z", polygon=polygon)])
    got = set(index.members([at(x, y) for x, y in points]).get("z", []))
    for i, p in enumerate(points):
        if distance_to_edges(p, polygon) > 1e-7:
            assert (i in got) == winding_inside(p, polygon), (p, polygon)


@settings(max_examples=100, deadline=None)
@given(polygon=star_polygons(), edge=st.integers(0, 11), t=st.floats(0, 1))
def test_points_on_an_edge_are_inside(polygon, edge, t):
    (x1, y1), (x2, y2) = polygon[edge % len(polygon)], polygon[(edge + 1) % len(polygon)]
    x, y = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
    assert ZoneIndex([ZoneSection(name="z", polygon=polygon)]).members([at(x, y)]) == {"z": [0]}
