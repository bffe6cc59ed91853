"""Named zones: polygons in the camera image, and which detected objects stand in each.

A zone is a polygon in normalised image coordinates (0..1, origin top-left, as
`protocol.Box`). An object is in a zone when its anchor point is: the bottom
centre of its box by default (where a person's feet touch the floor, which is
what a floor-marked danger area means), or the box centre (`anchor = "center"`,
for zones that are not on the floor). The polygon is closed: a point on its
edge is inside, so a person cut off by the bottom of the frame (box `y2 == 1.0`)
still counts in a zone drawn down to the frame's edge.

Membership is even-odd ray casting, vectorised with numpy over every anchor and
every edge of every zone at once; `ZoneIndex` compiles the zones once.

Example:
    >>> from protocol import Box, DetectedObject
    >>> dock = ZoneSection(name="dock", polygon=[(0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (0.0, 1.0)])
    >>> index = ZoneIndex([dock])
    >>> person = DetectedObject(cls="person", conf=0.9, box=Box(x1=0.1, y1=0.2, x2=0.3, y2=1.0))
    >>> cart = DetectedObject(cls="cart", conf=0.8, box=Box(x1=0.6, y1=0.6, x2=0.9, y2=0.9))
    >>> index.members([person, cart])
    {'dock': [0]}
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import Field, StringConstraints, model_validator

from edge_agent.sections import Section
from protocol import DetectedObject
from protocol.models import Unit

Label = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}$")]
"""A zone or rule name: safe as a telemetry tag, a `FrameResult.zones` key and a file name."""

MAX_ZONE_POINTS = 64
_EPS = 1e-9  # on-edge tolerance, in normalised image units

Point = tuple[Unit, Unit]
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


class ZoneSection(Section):
    """One named polygon in one camera's image (`[[perception.zones]]`)."""

    name: Label
    polygon: Annotated[list[Point], Field(min_length=3, max_length=MAX_ZONE_POINTS)]
    """Vertices `[x, y]` in 0..1 (x right, y down), in order around it; edges must not cross."""
    anchor: Literal["bottom", "center"] = "bottom"
    """Which point of a box must lie inside: bottom centre (feet) or centre."""
    camera: Label = "default"
    """The camera whose image the polygon is drawn on."""

    @model_validator(mode="after")
    def _simple(self) -> Self:
        problem = polygon_problem(self.polygon)
        if problem:
            raise ValueError(f"zone {self.name!r}: {problem}")
        return self


def polygon_problem(points: Sequence[tuple[float, float]]) -> str | None:
    """Why `points` is not a usable simple polygon, or None.

    Example:
        >>> polygon_problem([(0, 0), (1, 1), (1, 0), (0, 0.5)])
        'edges 0 and 2 cross (the polygon must not intersect itself)'
    """
    n = len(points)
    if any(points[i] == points[(i + 1) % n] for i in range(n)):
        return "repeated consecutive point"
    area2 = sum(
        points[i][0] * points[(i + 1) % n][1] - points[(i + 1) % n][0] * points[i][1]
        for i in range(n)
    )
    if abs(area2) < 1e-9:
        return "polygon has no area"
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            a, b = points[i], points[(i + 1) % n]
            c, d = points[j], points[(j + 1) % n]
            if _segments_meet(a, b, c, d):
                return f"edges {i} and {j} cross (the polygon must not intersect itself)"
    return None


def _orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_meet(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    o1, o2, o3, o4 = _orient(a, b, c), _orient(a, b, d), _orient(c, d, a), _orient(c, d, b)
    if ((o1 > 0) != (o2 > 0)) and ((o3 > 0) != (o4 > 0)) and 0 not in (o1, o2, o3, o4):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


class _Edges:
    """Every edge of a group of zones, as flat arrays sorted by zone."""

    def __init__(self, polygons: Sequence[Sequence[tuple[float, float]]]) -> None:
        starts: list[int] = []
        a: list[tuple[float, float]] = []
        b: list[tuple[float, float]] = []
        for polygon in polygons:
            starts.append(len(a))
            a.extend(polygon)
            b.extend([*polygon[1:], polygon[0]])
        self.starts = np.asarray(starts, dtype=np.intp)
        pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        self.x1, self.y1, self.x2, self.y2 = pa[:, 0], pa[:, 1], pb[:, 0], pb[:, 1]
        self.dx, self.dy = self.x2 - self.x1, self.y2 - self.y1
        self.length = np.hypot(self.dx, self.dy)
        # x advance per unit of y; horizontal edges never cross a horizontal ray, so 0 is safe
        self.dxdy = np.divide(self.dx, self.dy, out=np.zeros_like(self.dx), where=self.dy != 0)
        self.xmin, self.xmax = np.minimum(self.x1, self.x2), np.maximum(self.x1, self.x2)
        self.ymin, self.ymax = np.minimum(self.y1, self.y2), np.maximum(self.y1, self.y2)

    def inside(self, px: Floats, py: Floats) -> Bools:
        """(points x zones): the point lies inside or on the zone's polygon."""
        x, y = px[:, None], py[:, None]
        spans = (self.y1 > y) != (self.y2 > y)
        crosses = spans & (x < self.x1 + (y - self.y1) * self.dxdy)
        odd = np.logical_xor.reduceat(crosses, self.starts, axis=1)
        cross = self.dx * (y - self.y1) - self.dy * (x - self.x1)
        on_edge = (
            (np.abs(cross) <= _EPS * self.length)
            & (x >= self.xmin - _EPS)
            & (x <= self.xmax + _EPS)
            & (y >= self.ymin - _EPS)
            & (y <= self.ymax + _EPS)
        )
        touching = np.logical_or.reduceat(on_edge, self.starts, axis=1)
        result: Bools = odd | touching
        return result


class ZoneIndex:
    """Zones compiled for fast membership tests; build once, call `members` per frame."""

    def __init__(self, zones: Sequence[ZoneSection]) -> None:
        self.names = [z.name for z in zones]
        self._edges = _Edges([z.polygon for z in zones]) if zones else None
        self._center = np.array([z.anchor == "center" for z in zones], dtype=np.bool_)

    def inside(self, boxes: Floats) -> Bools:
        """(objects x zones) membership for an (n, 4) array of `x1, y1, x2, y2` boxes."""
        n = len(boxes)
        if n == 0 or self._edges is None:
            return np.zeros((n, len(self.names)), dtype=np.bool_)
        # both anchors of every box in one pass (bottom centres, then centres): fewer numpy calls
        cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
        y = np.concatenate((boxes[:, 3], (boxes[:, 1] + boxes[:, 3]) * 0.5))
        both = self._edges.inside(np.concatenate((cx, cx)), y)
        result: Bools = np.where(self._center, both[n:], both[:n])
        return result

    def members(self, objects: Sequence[DetectedObject]) -> dict[str, list[int]]:
        """Zone name → indices of the objects inside it; zones with none are left out.

        The result is what `protocol.FrameResult.zones` holds.
        """
        if not objects or not self.names:
            return {}
        return self.members_of(self.inside(boxes_array(objects)))

    def members_of(self, inside: Bools) -> dict[str, list[int]]:
        """`members` from an `inside` matrix already computed."""
        out: dict[str, list[int]] = {}
        for column, name in enumerate(self.names):
            rows = np.flatnonzero(inside[:, column])
            if rows.size:
                out[name] = rows.tolist()
        return out


def boxes_array(objects: Sequence[DetectedObject]) -> Floats:
    """The objects' boxes as an (n, 4) float array of `x1, y1, x2, y2`."""
    return np.array(
        [(o.box.x1, o.box.y1, o.box.x2, o.box.y2) for o in objects], dtype=np.float64
    ).reshape(-1, 4)


def zone_members(
    objects: Sequence[DetectedObject], zones: Sequence[ZoneSection]
) -> dict[str, list[int]]:
    """Zone name → indices of the objects inside it (compiles the zones: prefer `ZoneIndex`)."""
    return ZoneIndex(zones).members(objects)
