"""The simulated site: people and forklifts on their paths, differential-drive robots.

`World.step(dt)` advances everything by `dt` seconds of simulated time; the same
scenario and seed give the same trajectory, whatever the step sizes (steps are cut
into fixed sub-steps of at most `MAX_SUBSTEP_S`). Nothing here sleeps or reads the
wall clock: `RealTimeStepper` runs a world in real time on a thread.

A robot obeys the robot contract of `protocol.robot`: `drive()` holds a velocity until
its deadline and then brakes to zero by itself (a dead-man); `stop()` brakes at full
deceleration and stays latched until `release()`; `follow_path()` drives through
waypoints. Whatever it is told, it brakes for anything closer ahead than its safety
distance (people, forklifts, robots, shelves, the site's walls) and names it in
`blocked_by`. Every public method is thread-safe (one lock per world).

Example:
    >>> from sim.scenario import default_scenario
    >>> world = World(default_scenario(robots=1), seed=7)
    >>> robot = world.robots["robot-1"]
    >>> robot.drive(0.5, 0.0, duration_s=2.0)
    True
    >>> world.step(1.0)
    >>> round(robot.velocity.linear, 2), round(robot.pose.x, 2)
    (0.5, 2.35)
    >>> world.step(3.0)  # the deadline passed: it braked to a standstill by itself
    >>> robot.velocity.linear
    0.0
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np

from sim.errors import UnknownName
from sim.scenario import Actor, Limits, Robot, Scenario, Spot

logger = logging.getLogger(__name__)

MAX_SUBSTEP_S = 0.02
TIME_EPS_S = 1e-9
"""Deadlines compare with this slack, so float sums of step sizes do not move them a step."""
WAYPOINT_TOLERANCE_M = 0.15
BodyClass = Literal["person", "forklift", "robot"]
Solid = tuple[str, float, float, float, float]
CameraFault = Literal["frozen", "blackout"]
BODY_RADIUS_M: dict[str, float] = {"person": 0.3, "forklift": 1.2}
IMMOBILISING_FAULTS = frozenset({"estop", "drive_fault", "battery_empty"})
"""Faults that hold a robot still, whatever it is told, until they are cleared."""
METRICS = ("battery_pct", "temperature_c", "linear_mps", "angular_rps")
"""What `SimRobot.readings()` reports, and what `World.spike_sensor` may override."""


@dataclass(frozen=True, slots=True)
class Pose:
    """Position in the site frame (metres) and heading (radians, counter-clockwise from +x)."""

    x: float
    y: float
    heading: float


@dataclass(frozen=True, slots=True)
class Velocity:
    """Linear (m/s, forward positive) and angular (rad/s, counter-clockwise positive)."""

    linear: float
    angular: float


@dataclass(frozen=True, slots=True)
class Battery:
    """Charge in percent and whether it is charging now."""

    percent: float
    charging: bool


@dataclass(frozen=True, slots=True)
class Body:
    """Something solid the cameras see: an actor or a robot, at one instant."""

    id: str
    cls: BodyClass
    x: float
    y: float
    heading: float
    look: int
    """A stable number that picks its colours (a person's clothes, a forklift's paint)."""
    radius_m: float


def _clamp(value: float, limit: float) -> float:
    return max(-limit, min(limit, value))


def _approach(current: float, target: float, accel: float, decel: float, dt: float) -> float:
    """Move `current` toward `target`: speeding up at `accel`, slowing down at `decel`."""
    speeding_up = abs(target) > abs(current) and target * current >= 0.0
    step = (accel if speeding_up else decel) * dt
    return current + _clamp(target - current, step)


def _wrap(angle: float) -> float:
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


class SimActor:
    """A person or forklift moving along its path, ignoring robots (robots must yield)."""

    def __init__(self, spec: Actor, speed_factor: float, look: int) -> None:
        self.spec = spec
        self.id = spec.id
        self.cls: BodyClass = spec.kind
        self.speed_mps = spec.speed_mps * speed_factor
        self.look = look
        self.x, self.y = spec.path[0]
        self._path: list[tuple[float, float]] = [(float(x), float(y)) for x, y in spec.path]
        self._holding = False  # walked somewhere by `walk_to`: stays there
        self._target = 1
        self._direction = 1
        self._pause_left = 0.0
        self.heading = self._bearing()

    def walk_to(self, x: float, y: float, *, start: tuple[float, float] | None = None) -> None:
        """Leave the scenario's path: (appear at `start`, then) walk to (x, y) and stay there.

        For walk-in tests of a robot's danger zone (`POST /actors/{id}/walk` on `outpost
        sim run`'s control endpoint). Call the world's methods under `world.lock`.
        """
        if start is not None:
            self.x, self.y = float(start[0]), float(start[1])
        self._path = [(self.x, self.y), (float(x), float(y))]
        self._holding, self._target, self._direction, self._pause_left = True, 1, 1, 0.0
        self.heading = self._bearing()

    def _bearing(self) -> float:
        tx, ty = self._path[self._target]
        if (tx, ty) == (self.x, self.y):
            return getattr(self, "heading", 0.0)
        return math.atan2(ty - self.y, tx - self.x)

    def _advance_target(self) -> None:
        last = len(self._path) - 1
        if self.spec.mode == "loop":
            self._target = (self._target + 1) % (last + 1)
            return
        if not 0 <= self._target + self._direction <= last:
            self._direction = -self._direction
        self._target += self._direction

    def step(self, dt: float) -> None:
        """Walk or drive `dt` seconds along the path, pausing at waypoints."""
        left = dt
        while left > 1e-12:
            if self._pause_left > 0.0:
                used = min(self._pause_left, left)
                self._pause_left -= used
                left -= used
                continue
            tx, ty = self._path[self._target]
            dist = math.hypot(tx - self.x, ty - self.y)
            reach = self.speed_mps * left
            if reach < dist:
                self.x += (tx - self.x) * reach / dist
                self.y += (ty - self.y) * reach / dist
                return
            self.x, self.y = tx, ty
            if self._holding:
                return  # walked where it was sent: stands there
            left -= dist / self.speed_mps
            self._pause_left = self.spec.pause_s
            self._advance_target()
            self.heading = self._bearing()

    @property
    def pose(self) -> Pose:
        """Where it is: site metres and heading (direction of travel)."""
        return Pose(self.x, self.y, self.heading)

    def body(self) -> Body:
        """Where it is now, for cameras and robots' obstacle checks."""
        return Body(
            self.id, self.cls, self.x, self.y, self.heading, self.look, BODY_RADIUS_M[self.cls]
        )


class SimRobot:
    """A differential-drive robot with speed and acceleration limits, battery and faults.

    Properties report what the robot's sensors say: a spike injected with
    `World.spike_sensor` shows in `temperature_c`, `battery` and `readings()`.
    """

    def __init__(self, spec: Robot, world: World) -> None:
        self.spec = spec
        self.id = spec.id
        self.face = spec.face
        self.limits: Limits = spec.limits
        self._world = world
        self._x, self._y, self._heading = spec.x, spec.y, spec.heading
        self._v = 0.0
        self._w = 0.0
        self._cmd: tuple[float, float, float] | None = None  # linear, angular, deadline
        self._path: list[tuple[float, float]] = []
        self._path_speed = 0.0
        self._latched = False
        self._battery = spec.battery_pct
        self._charging = False
        self._temperature = spec.limits.ambient_c
        self._faults: set[str] = set()
        self._blocked_by: str | None = None
        self._odometer_m = 0.0
        self._spikes: dict[str, tuple[float, float]] = {}  # metric -> value, until
        self._patrol = [(float(x), float(y)) for x, y in spec.patrol]
        self._patrolling = bool(self._patrol)

    # --- commands -------------------------------------------------------------------

    def drive(self, linear_mps: float, angular_rps: float, *, duration_s: float) -> bool:
        """Hold these velocities (clamped to the limits) for `duration_s`, then brake to zero.

        Replaces any command or path. False (ignored) while a `stop()` is latched.
        """
        with self._world.lock:
            if self._latched:
                return False
            self._patrolling = False  # an operator took over
            self._path = []
            deadline = self._world.time_s + max(0.0, duration_s)
            self._cmd = (
                _clamp(linear_mps, self.limits.max_linear_mps),
                _clamp(angular_rps, self.limits.max_angular_rps),
                deadline,
            )
            return True

    def follow_path(
        self, waypoints: list[tuple[float, float]], speed_mps: float | None = None
    ) -> bool:
        """Drive through the waypoints (site metres) at `speed_mps` (default: the limit).

        Replaces any command or path; the robot stops at the last waypoint. False
        (ignored) while a `stop()` is latched.
        """
        with self._world.lock:
            if self._latched:
                return False
            self._patrolling = False  # an operator took over
            self._cmd = None
            self._path = [(float(x), float(y)) for x, y in waypoints]
            limit = self.limits.max_linear_mps
            self._path_speed = limit if speed_mps is None else min(abs(speed_mps), limit)
            return True

    def stop(self) -> None:
        """Brake at full deceleration and stay stopped until `release()` (idempotent)."""
        with self._world.lock:
            if not self._latched:
                logger.info("robot %s: stop latched", self.id)
            self._latched = True
            self._patrolling = False  # a stopped robot stays put until told to move
            self._cmd = None
            self._path = []

    def release(self) -> None:
        """Lift a latched stop; the robot stays still until it is told to move.

        (The MQTT face brakes with `stop()` then `release()` at once: its agent owns the
        latch, so a release must never set anything in motion.)
        """
        with self._world.lock:
            if self._latched:
                logger.info("robot %s: stop released", self.id)
            self._latched = False

    # --- state ------------------------------------------------------------------------

    @property
    def pose(self) -> Pose:
        """Where it is: site metres and heading."""
        with self._world.lock:
            return Pose(self._x, self._y, self._heading)

    @property
    def velocity(self) -> Velocity:
        """How fast it moves now (not what it was told)."""
        with self._world.lock:
            return Velocity(self._v, self._w)

    @property
    def battery(self) -> Battery:
        """Charge (percent, as its sensor reads) and whether it is on a charger, charging."""
        with self._world.lock:
            return Battery(self._reading("battery_pct", self._battery), self._charging)

    @property
    def temperature_c(self) -> float:
        """Its temperature as its sensor reads (°C)."""
        with self._world.lock:
            return self._reading("temperature_c", self._temperature)

    @property
    def faults(self) -> set[str]:
        """Active faults (a copy): injected ones, `overheat` and `battery_empty`."""
        with self._world.lock:
            return set(self._faults)

    @property
    def stopped(self) -> bool:
        """Whether a `stop()` is latched."""
        with self._world.lock:
            return self._latched

    @property
    def blocked_by(self) -> str | None:
        """What it is braking for now: an actor or robot id, `shelf:NAME` or `wall`; None."""
        with self._world.lock:
            return self._blocked_by

    @property
    def path(self) -> list[tuple[float, float]]:
        """The waypoints still ahead (empty when not following a path)."""
        with self._world.lock:
            return list(self._path)

    @property
    def odometer_m(self) -> float:
        """Distance driven since the start."""
        with self._world.lock:
            return self._odometer_m

    def readings(self) -> dict[str, float]:
        """Every metric in `METRICS` as its sensor reads it now."""
        with self._world.lock:
            true = {
                "battery_pct": self._battery,
                "temperature_c": self._temperature,
                "linear_mps": self._v,
                "angular_rps": self._w,
            }
            return {name: self._reading(name, value) for name, value in true.items()}

    def _reading(self, metric: str, true_value: float) -> float:
        spike = self._spikes.get(metric)
        if spike is not None and self._world.time_s < spike[1]:
            return spike[0]
        return true_value

    def body(self) -> Body:
        """Where it is now, for cameras and other robots' obstacle checks."""
        look = sum(map(ord, self.id))
        return Body(self.id, "robot", self._x, self._y, self._heading, look, self.limits.radius_m)

    # --- physics ----------------------------------------------------------------------

    def _wanted(self, now: float) -> tuple[float, float]:
        """The velocities the robot is trying to reach, before obstacles and limits."""
        if self._latched or self._faults & IMMOBILISING_FAULTS:
            return 0.0, 0.0
        if self._cmd is not None:
            linear, angular, deadline = self._cmd
            if now < deadline - TIME_EPS_S:
                return linear, angular
            self._cmd = None
            logger.debug("robot %s: command deadline passed, braking", self.id)
        if self._path:
            return self._pursue()
        return 0.0, 0.0

    def _pursue(self) -> tuple[float, float]:
        while self._path:
            tx, ty = self._path[0]
            dist = math.hypot(tx - self._x, ty - self._y)
            if dist > WAYPOINT_TOLERANCE_M:
                break
            self._path.pop(0)
        if not self._path:
            return 0.0, 0.0
        error = _wrap(math.atan2(ty - self._y, tx - self._x) - self._heading)
        angular = _clamp(2.5 * error, self.limits.max_angular_rps)
        remaining = dist + sum(
            math.dist(a, b) for a, b in zip(self._path, self._path[1:], strict=False)
        )
        # slow enough near the end to stop on the last waypoint
        braking = math.sqrt(2.0 * self.limits.max_decel_mps2 * 0.8 * remaining)
        linear = min(self._path_speed, braking) * max(0.0, math.cos(error)) ** 3
        return linear, angular

    def _step(self, dt: float, now: float, others: list[Body]) -> None:
        lim = self.limits
        if self._patrolling and self._cmd is None and not self._path:
            self._path, self._path_speed = list(self._patrol), 0.6 * lim.max_linear_mps
        linear, angular = self._wanted(now)
        top = lim.max_linear_mps * (0.5 if "overheat" in self._faults else 1.0)
        linear = _clamp(linear, top)
        if linear == 0.0 and self._v == 0.0:
            self._blocked_by = None  # standing still (turning, at most): nothing to brake for
        else:
            direction = 1.0 if (linear or self._v) > 0.0 else -1.0
            self._blocked_by = self._obstacle(direction, others)
            if self._blocked_by is not None:
                linear = 0.0
        self._v = _approach(self._v, linear, lim.max_accel_mps2, lim.max_decel_mps2, dt)
        accel_w = lim.max_angular_accel_rps2
        self._w = _approach(self._w, angular, accel_w, accel_w, dt)
        self._move(dt)
        self._update_battery(dt)
        self._update_temperature(dt)

    def _move(self, dt: float) -> None:
        mid = self._heading + self._w * dt / 2.0
        x = self._x + self._v * math.cos(mid) * dt
        y = self._y + self._v * math.sin(mid) * dt
        if self._world.solid_at(x, y, self.limits.radius_m) is not None and self._v != 0.0:
            self._v = 0.0  # never drive into a wall or shelf, even when braking late
        else:
            self._odometer_m += math.hypot(x - self._x, y - self._y)
            self._x, self._y = x, y
        self._heading = _wrap(self._heading + self._w * dt)

    def _obstacle(self, direction: float, others: list[Body]) -> str | None:
        """The nearest thing within the safety distance in the direction of travel."""
        lim = self.limits
        cos_h, sin_h = math.cos(self._heading), math.sin(self._heading)
        nearest: tuple[float, str] | None = None
        for other in others:
            dx, dy = other.x - self._x, other.y - self._y
            along = direction * (dx * cos_h + dy * sin_h)
            across = abs(-dx * sin_h + dy * cos_h)
            reach = lim.radius_m + other.radius_m
            gap = along - reach
            ahead = along > 0.0 and across < reach + 0.1 and gap < lim.safety_distance_m
            if ahead and (nearest is None or gap < nearest[0]):
                nearest = (gap, other.id)
        if nearest is not None:
            return nearest[1]
        return self._solid_ahead(direction, cos_h, sin_h)

    def _solid_ahead(self, direction: float, cos_h: float, sin_h: float) -> str | None:
        """A shelf or wall within the safety distance ahead, probed every 10 cm."""
        lim = self.limits
        ahead = lim.radius_m + lim.safety_distance_m
        near = self._world.solids_near(self._x, self._y, ahead + lim.radius_m)
        if not near:
            return None
        steps = max(1, math.ceil(ahead / 0.1))
        for i in range(1, steps + 1):
            along = direction * ahead * i / steps
            for side in (-lim.radius_m, 0.0, lim.radius_m):
                x = self._x + along * cos_h - side * sin_h
                y = self._y + along * sin_h + side * cos_h
                for name, x0, y0, x1, y1 in near:
                    if x0 <= x <= x1 and y0 <= y <= y1:
                        return name
        return None

    def _update_battery(self, dt: float) -> None:
        lim = self.limits
        spot = self._world.charger_at(self._x, self._y)
        self._charging = spot is not None and abs(self._v) < 0.05 and self._battery < 100.0
        if self._charging:
            self._battery = min(100.0, self._battery + lim.charge_pct_per_s * dt)
        else:
            used = lim.idle_drain_pct_per_s * dt + lim.drain_pct_per_m * abs(self._v) * dt
            self._battery = max(0.0, self._battery - used)
        self._flag("battery_empty", self._battery <= 0.0, self._battery > 1.0)

    def _update_temperature(self, dt: float) -> None:
        lim = self.limits
        effort = abs(self._v) / lim.max_linear_mps + 0.3 * abs(self._w) / lim.max_angular_rps
        heat = lim.heat_c_per_s_at_full_speed * effort
        self._temperature += (heat - lim.cooling_per_s * (self._temperature - lim.ambient_c)) * dt
        hot = self._reading("temperature_c", self._temperature)
        self._flag("overheat", hot > lim.overheat_c, hot < lim.overheat_c - 5.0)

    def _flag(self, fault: str, raise_: bool, clear: bool) -> None:
        if raise_ and fault not in self._faults:
            self._faults.add(fault)
            logger.info("robot %s: fault %s", self.id, fault)
        elif clear and fault in self._faults:
            self._faults.discard(fault)
            logger.info("robot %s: fault %s cleared", self.id, fault)


class World:
    """The whole simulated site; `step()` it, read `robots` and `actors`.

    Example:
        >>> from sim.scenario import default_scenario
        >>> world = World(default_scenario(), seed=1)
        >>> sorted(world.robots), len(world.actors) > 0
        (['robot-1', 'robot-2', 'robot-3'], True)
    """

    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.lock = threading.RLock()
        self.time_s = 0.0
        rng = np.random.default_rng(seed)
        self.actors: dict[str, SimActor] = {}
        for spec in scenario.actors:
            factor = float(rng.uniform(0.85, 1.15))
            self.actors[spec.id] = SimActor(spec, factor, int(rng.integers(1 << 30)))
        self.robots: dict[str, SimRobot] = {r.id: SimRobot(r, self) for r in scenario.robots}
        self.camera_names: tuple[str, ...] = tuple(
            [c.name for c in scenario.cameras]
            + [r.id for r in scenario.robots if r.camera is not None]
        )
        self._camera_faults: dict[str, tuple[CameraFault, float]] = {}
        self._shelves = [
            (f"shelf:{s.name}", s.x, s.y, s.x + s.w, s.y + s.d) for s in scenario.shelves
        ]
        w, h, big = scenario.site.width_m, scenario.site.height_m, 1e6
        self._walls = [  # outside the site, as four huge rectangles
            ("wall", -big, -big, 0.0, big),
            ("wall", w, -big, big, big),
            ("wall", -big, -big, big, 0.0),
            ("wall", -big, h, big, big),
        ]

    # --- time ------------------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Advance `dt` simulated seconds, in fixed sub-steps of at most `MAX_SUBSTEP_S`."""
        if dt < 0.0 or not math.isfinite(dt):
            raise ValueError(f"dt must be a finite number of seconds >= 0, got {dt}")
        with self.lock:
            end = self.time_s + dt
            while end - self.time_s > 1e-9:
                h = min(MAX_SUBSTEP_S, end - self.time_s)
                self._substep(h)
            self.time_s = end

    def _substep(self, h: float) -> None:
        for actor in self.actors.values():
            actor.step(h)
        bodies = self.bodies()
        for robot in self.robots.values():
            others = [b for b in bodies if b.id != robot.id]
            robot._step(h, self.time_s, others)
        self.time_s += h

    # --- what is where -----------------------------------------------------------------

    def bodies(self) -> list[Body]:
        """Every actor and robot as it is now (a snapshot)."""
        with self.lock:
            return [a.body() for a in self.actors.values()] + [
                r.body() for r in self.robots.values()
            ]

    def solid_at(self, x: float, y: float, margin: float) -> str | None:
        """`shelf:NAME` or `wall` when a disc of radius `margin` at (x, y) meets one."""
        site = self.scenario.site
        if not (margin <= x <= site.width_m - margin and margin <= y <= site.height_m - margin):
            return "wall"
        for name, x0, y0, x1, y1 in self._shelves:
            if x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin:
                return name
        return None

    def solids_near(self, x: float, y: float, reach: float) -> list[Solid]:
        """Shelves and walls (name, x0, y0, x1, y1) within `reach` of (x, y), box distance."""
        return [
            s
            for s in (*self._shelves, *self._walls)
            if s[1] - reach <= x <= s[3] + reach and s[2] - reach <= y <= s[4] + reach
        ]

    def charger_at(self, x: float, y: float) -> Spot | None:
        """The charging spot at (x, y), if any."""
        for spot in self.scenario.chargers:
            if math.hypot(spot.x - x, spot.y - y) <= spot.radius_m:
                return spot
        return None

    def zones_at(self, x: float, y: float) -> list[str]:
        """Names of the scenario's zones containing (x, y)."""
        return [z.name for z in self.scenario.zones if z.contains(x, y)]

    # --- fault injection ---------------------------------------------------------------

    def robot(self, robot_id: str) -> SimRobot:
        """The robot with this id; `UnknownName` listing the ids when there is none."""
        try:
            return self.robots[robot_id]
        except KeyError:
            raise UnknownName(f"no robot {robot_id!r} (robots: {sorted(self.robots)})") from None

    def drain_battery(self, robot_id: str, to_pct: float) -> None:
        """Set the robot's true charge to `to_pct` percent (0..100)."""
        if not 0.0 <= to_pct <= 100.0:
            raise ValueError(f"to_pct must be 0..100, got {to_pct}")
        robot = self.robot(robot_id)
        with self.lock:
            robot._battery = to_pct
            robot._flag("battery_empty", to_pct <= 0.0, to_pct > 1.0)
        logger.info("robot %s: battery drained to %.1f%%", robot_id, to_pct)

    def spike_sensor(self, robot_id: str, metric: str, value: float, duration_s: float) -> None:
        """Make the robot's `metric` sensor read `value` for `duration_s` simulated seconds."""
        if metric not in METRICS:
            raise UnknownName(f"no metric {metric!r} (metrics: {list(METRICS)})")
        robot = self.robot(robot_id)
        with self.lock:
            robot._spikes[metric] = (value, self.time_s + duration_s)
        logger.info("robot %s: %s spiked to %s for %.1f s", robot_id, metric, value, duration_s)

    def set_fault(self, robot_id: str, name: str) -> None:
        """Raise a named fault on the robot (`estop`, `drive_fault` hold it still)."""
        robot = self.robot(robot_id)
        with self.lock:
            robot._flag(name, True, False)

    def clear_fault(self, robot_id: str, name: str) -> None:
        """Clear a named fault (no-op when it is not raised)."""
        robot = self.robot(robot_id)
        with self.lock:
            robot._flag(name, False, True)

    def freeze_camera(self, camera: str, duration_s: float) -> None:
        """The camera repeats its last frame for `duration_s` simulated seconds."""
        self._camera_fault(camera, "frozen", duration_s)

    def blackout_camera(self, camera: str, duration_s: float) -> None:
        """The camera gives black frames for `duration_s` simulated seconds."""
        self._camera_fault(camera, "blackout", duration_s)

    def _camera_fault(self, camera: str, kind: CameraFault, duration_s: float) -> None:
        if camera not in self.camera_names:
            raise UnknownName(f"no camera {camera!r} (cameras: {list(self.camera_names)})")
        with self.lock:
            self._camera_faults[camera] = (kind, self.time_s + duration_s)
        logger.info("camera %s: %s for %.1f s", camera, kind, duration_s)

    def camera_fault(self, camera: str) -> CameraFault | None:
        """The fault the camera shows now, if any."""
        with self.lock:
            fault = self._camera_faults.get(camera)
            if fault is None or self.time_s >= fault[1]:
                return None
            return fault[0]


class RealTimeStepper:
    """Steps a world on a daemon thread at `rate_hz`, in real time times `speed`.

    Example:
        with RealTimeStepper(world, rate_hz=20):
            ...  # the world moves; cameras and robot faces read it
    """

    def __init__(self, world: World, *, rate_hz: float = 20.0, speed: float = 1.0) -> None:
        self.world = world
        self.period_s = 1.0 / rate_hz
        self.speed = speed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start stepping (no-op when running)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sim-world", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop stepping and wait for the thread."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=5)

    def _run(self) -> None:
        last = time.monotonic()
        for _ in self._ticks():
            now = time.monotonic()
            self.world.step((now - last) * self.speed)
            last = now

    def _ticks(self) -> Iterator[None]:
        while not self._stop.wait(self.period_s):
            yield None

    def __enter__(self) -> RealTimeStepper:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
