"""Scenarios: the site, its people, forklifts, robots and cameras, read from YAML.

Coordinates are the site frame of `protocol.Waypoint`: metres, x east, y north, origin
at the site's south-west corner; headings in radians, counter-clockwise from +x. Every
model forbids unknown keys, so a typo is an error naming the file and the key.

Example:
    >>> scenario = default_scenario(robots=2)
    >>> [r.id for r in scenario.robots]
    ['robot-1', 'robot-2']
    >>> scenario.site.width_m, sorted({z.name for z in scenario.zones})
    (40.0, ['charging', 'danger', 'dock'])
    >>> Scenario.model_validate({"name": "x", "site": {"width_m": 0, "height_m": 5}})
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Scenario
    ...
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from sim.errors import ScenarioError

DOCS = "docs/simulator.md"
MAX_ROBOTS = 36

DeviceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
"""A robot id, which is also its device id on the wire."""
Label = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]{0,63}$")]
"""A zone, camera, actor or fixture name: the same grammar as the agent's zone names."""
Metres = Annotated[float, Field(ge=-1e4, le=1e4)]
Positive = Annotated[float, Field(gt=0.0, le=1e4)]
Point = tuple[Metres, Metres]


class Model(BaseModel):
    """Base of every scenario model: immutable, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Site(Model):
    """The site's floor: a rectangle from (0, 0) to (width_m, height_m)."""

    width_m: Annotated[float, Field(gt=0.0, le=1000.0)]
    height_m: Annotated[float, Field(gt=0.0, le=1000.0)]


class Shelf(Model):
    """A shelf run (an obstacle): axis-aligned rectangle, `x`/`y` its south-west corner."""

    name: Label
    x: Metres
    y: Metres
    w: Positive
    """Extent along x, metres."""
    d: Positive
    """Extent along y, metres."""
    height_m: Annotated[float, Field(gt=0.0, le=20.0)] = 2.2

    def contains(self, x: float, y: float, margin: float = 0.0) -> bool:
        """Whether the point lies on the shelf's footprint grown by `margin` metres."""
        return (
            self.x - margin <= x <= self.x + self.w + margin
            and self.y - margin <= y <= self.y + self.d + margin
        )


class Spot(Model):
    """A named place on the floor: a dock door or a charging pad."""

    name: Label
    x: Metres
    y: Metres
    radius_m: Annotated[float, Field(gt=0.0, le=20.0)] = 0.6


class Zone(Model):
    """A named floor polygon in site metres (`danger`, `dock`, ...), like the agent's zones."""

    name: Label
    polygon: Annotated[list[Point], Field(min_length=3, max_length=64)]

    @model_validator(mode="after")
    def _has_area(self) -> Self:
        pts = self.polygon
        area2 = sum(
            pts[i][0] * pts[(i + 1) % len(pts)][1] - pts[(i + 1) % len(pts)][0] * pts[i][1]
            for i in range(len(pts))
        )
        if abs(area2) < 1e-9:
            raise ValueError(f"zone {self.name!r}: polygon has no area")
        return self

    def contains(self, x: float, y: float) -> bool:
        """Whether the point is inside (even-odd rule)."""
        inside = False
        pts = self.polygon
        for (x1, y1), (x2, y2) in zip(pts, [*pts[1:], pts[0]], strict=True):
            if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside


ActorKind = Literal["person", "forklift"]


class Actor(Model):
    """A person or forklift walking/driving its waypoint path for ever."""

    id: Label
    kind: ActorKind
    path: Annotated[list[Point], Field(min_length=2, max_length=256)]
    speed_mps: Annotated[float, Field(gt=0.0, le=10.0)]
    mode: Literal["loop", "back_and_forth"] = "back_and_forth"
    """`loop`: after the last waypoint head for the first; `back_and_forth`: reverse."""
    pause_s: Annotated[float, Field(ge=0.0, le=3600.0)] = 0.0
    """Time spent standing at each waypoint."""


class Limits(Model):
    """A differential-drive robot's limits and physical constants."""

    max_linear_mps: Annotated[float, Field(gt=0.0, le=10.0)] = 1.2
    max_angular_rps: Annotated[float, Field(gt=0.0, le=10.0)] = 1.5
    max_accel_mps2: Annotated[float, Field(gt=0.0, le=20.0)] = 0.8
    max_decel_mps2: Annotated[float, Field(gt=0.0, le=20.0)] = 1.6
    max_angular_accel_rps2: Annotated[float, Field(gt=0.0, le=50.0)] = 3.0
    radius_m: Annotated[float, Field(gt=0.0, le=5.0)] = 0.35
    safety_distance_m: Annotated[float, Field(ge=0.0, le=20.0)] = 0.8
    """Free space kept ahead (beyond the robot's radius); closer obstacles stop it."""
    idle_drain_pct_per_s: Annotated[float, Field(ge=0.0, le=10.0)] = 0.002
    drain_pct_per_m: Annotated[float, Field(ge=0.0, le=10.0)] = 0.02
    charge_pct_per_s: Annotated[float, Field(ge=0.0, le=100.0)] = 0.25
    ambient_c: Annotated[float, Field(ge=-50.0, le=80.0)] = 24.0
    heat_c_per_s_at_full_speed: Annotated[float, Field(ge=0.0, le=100.0)] = 0.05
    cooling_per_s: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    """Fraction of the excess over ambient lost each second."""
    overheat_c: Annotated[float, Field(gt=-50.0, le=200.0)] = 70.0
    """Above this the robot reports the `overheat` fault and drives at half speed."""


class MountedCamera(Model):
    """A robot's front camera, relative to the robot."""

    height_m: Annotated[float, Field(gt=0.0, le=10.0)] = 1.0
    pitch_rad: Annotated[float, Field(ge=-1.0, le=1.5)] = 0.12
    """Down-tilt: 0 looks at the horizon, positive looks down."""
    fov_deg: Annotated[float, Field(gt=10.0, le=150.0)] = 90.0
    width: Annotated[int, Field(ge=16, le=4096)] = 320
    height: Annotated[int, Field(ge=16, le=4096)] = 240


class Robot(Model):
    """A simulated robot: where it starts and which face (network contract) it shows."""

    id: DeviceId
    x: Metres
    y: Metres
    heading: float = 0.0
    face: Literal["mqtt", "ros"] = "mqtt"
    battery_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 100.0
    limits: Limits = Limits()
    camera: MountedCamera | None = MountedCamera()
    """Its front camera (served as camera `{id}`); null for none."""
    patrol: Annotated[list[Point], Field(max_length=256)] = []
    """Waypoints it drives in a loop on its own navigation, as AMRs do, until a stop or
    an operator's command takes over (empty: it waits for commands)."""


class FixedCamera(Model):
    """A site camera on a wall or pole."""

    name: Label
    x: Metres
    y: Metres
    z: Annotated[float, Field(gt=0.0, le=100.0)] = 4.0
    heading: float = 0.0
    pitch_rad: Annotated[float, Field(ge=-1.0, le=1.5)] = 0.5
    fov_deg: Annotated[float, Field(gt=10.0, le=150.0)] = 75.0
    width: Annotated[int, Field(ge=16, le=4096)] = 640
    height: Annotated[int, Field(ge=16, le=4096)] = 480


FaultKind = Literal[
    "link_cut",
    "broker_stop",
    "camera_freeze",
    "camera_blackout",
    "battery_drain",
    "sensor_spike",
    "clock_skew",
]
"""Faults on demand (`docs/simulator.md`, Faults); `outpost sim fault KIND` takes the same."""
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]
_NEEDS: dict[str, tuple[str, ...]] = {
    "sensor_spike": ("robot", "metric", "value"),
    "battery_drain": ("robot",),
    "clock_skew": ("robot",),
}


class Fault(Model):
    """One fault: what, on which robot or camera, for how long; `at_s` after the fleet is up.

    `robot` empty on `link_cut`: every robot's link. `camera` defaults to the robot's own.
    `seconds` is the offset of the robot's clock for `clock_skew` (may be negative).
    """

    at_s: Annotated[float, Field(ge=0.0, le=86_400.0)] = 0.0
    kind: FaultKind
    robot: DeviceId | None = None
    camera: Label | None = None
    seconds: Annotated[float, Field(ge=-86_400.0, le=86_400.0)] = 10.0
    to_pct: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    metric: Label | None = None
    value: float | None = None

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = [k for k in _NEEDS.get(self.kind, ()) if getattr(self, k) is None]
        if self.kind.startswith("camera_") and self.camera is None and self.robot is None:
            missing.append("camera (or robot)")
        if missing:
            raise ValueError(f"fault {self.kind!r} needs {', '.join(missing)}")
        if self.kind != "clock_skew" and self.seconds < 0:
            raise ValueError(f"fault {self.kind!r}: seconds must be >= 0 (got {self.seconds})")
        return self


class Scenario(Model):
    """A whole simulated site."""

    name: Label
    site: Site
    shelves: list[Shelf] = []
    docks: list[Spot] = []
    chargers: list[Spot] = []
    zones: list[Zone] = []
    actors: list[Actor] = []
    robots: list[Robot] = []
    cameras: list[FixedCamera] = []
    faults: list[Fault] = []
    """Faults injected by `outpost sim run`, each `at_s` seconds after the fleet is up."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        groups: dict[str, list[str]] = {
            "shelves": [s.name for s in self.shelves],
            "docks": [s.name for s in self.docks],
            "chargers": [s.name for s in self.chargers],
            "actors": [a.id for a in self.actors],
            "robots": [r.id for r in self.robots],
            # robots' cameras are named after the robot
            "cameras": [c.name for c in self.cameras]
            + [r.id for r in self.robots if r.camera is not None],
        }
        for group, names in groups.items():
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{group}: duplicate names {dupes}")
        for robot in self.robots:
            self._check_free(f"robot {robot.id!r}", robot.x, robot.y)
        for actor in self.actors:
            for x, y in actor.path:
                self._check_on_site(f"actor {actor.id!r} waypoint", x, y)
        for fault in self.faults:
            if fault.robot is not None and fault.robot not in groups["robots"]:
                raise ValueError(f"fault {fault.kind!r}: no robot {fault.robot!r}")
        return self

    def _check_on_site(self, what: str, x: float, y: float) -> None:
        if not (0.0 <= x <= self.site.width_m and 0.0 <= y <= self.site.height_m):
            raise ValueError(
                f"{what} at ({x}, {y}) is off the site "
                f"(0..{self.site.width_m}, 0..{self.site.height_m})"
            )

    def _check_free(self, what: str, x: float, y: float) -> None:
        self._check_on_site(what, x, y)
        for shelf in self.shelves:
            if shelf.contains(x, y):
                raise ValueError(f"{what} at ({x}, {y}) is inside shelf {shelf.name!r}")

    def robot(self, robot_id: str) -> Robot:
        """The robot with this id (KeyError if none)."""
        for robot in self.robots:
            if robot.id == robot_id:
                return robot
        raise KeyError(robot_id)


def scenario_from_dict(data: object, *, source: str) -> Scenario:
    """Validate parsed YAML; `ScenarioError` names `source`, each bad key and what is allowed."""
    if not isinstance(data, dict):
        raise ScenarioError(f"{source}: expected a mapping at the top level, got {data!r:.60}")
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_describe(exc, source)) from None


def _describe(exc: ValidationError, source: str) -> str:
    """One line per problem: `file: key: what is wrong (got …)`, or a check's own words."""
    lines = []
    for err in exc.errors(include_url=False):
        key = ".".join(str(part) for part in err["loc"])
        if err["type"] == "value_error":  # our checks name what they found
            message = str(err.get("ctx", {}).get("error", err["msg"]))
        elif err["type"] == "extra_forbidden":
            message = f"unknown key (check the spelling against {DOCS})"
        elif err["type"] == "missing":
            message = "required key is missing"
        else:
            message = f"{err['msg']} (got {err.get('input')!r:.60})"
        lines.append(f"{source}: {key}: {message}" if key else f"{source}: {message}")
    return "\n".join(lines)


def load_scenario(path: Path) -> Scenario:
    """Read a scenario YAML file; `ScenarioError` (a `SimError`) when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: not valid YAML: {exc}") from exc
    return scenario_from_dict(data, source=str(path))


def builtin_scenario_text() -> str:
    """The YAML text of the built-in warehouse scenario (`sim/scenarios/warehouse.yaml`)."""
    return resources.files("sim").joinpath("scenarios/warehouse.yaml").read_text(encoding="utf-8")


def default_scenario(robots: int = 3) -> Scenario:
    """The built-in warehouse with `robots` robots (1..36): its own three, then more parked
    along the north and south main aisles, facing east."""
    if not 1 <= robots <= MAX_ROBOTS:
        raise ScenarioError(f"robots: {robots} is not allowed (1..{MAX_ROBOTS})")
    base = scenario_from_dict(yaml.safe_load(builtin_scenario_text()), source="warehouse.yaml")
    fleet = list(base.robots[:robots])
    spots = [(2.0 + 2.0 * i, row) for row in (22.8, 1.2) for i in range(18)]
    taken = {(r.x, r.y) for r in fleet}
    free = (s for s in spots if s not in taken)
    while len(fleet) < robots:
        x, y = next(free)
        face: Literal["mqtt", "ros"] = "ros" if len(fleet) % 3 == 2 else "mqtt"
        fleet.append(Robot(id=f"robot-{len(fleet) + 1}", x=x, y=y, face=face))
    return base.model_copy(update={"robots": fleet})


def heading_to(x1: float, y1: float, x2: float, y2: float) -> float:
    """Heading (radians) of the direction from one point to another."""
    return math.atan2(y2 - y1, x2 - x1)
