"""The world's kinematics: limits, dead-man deadlines, latched stops, paths, obstacles, power."""

from __future__ import annotations

import math
import time

import pytest

from sim.errors import UnknownName
from sim.scenario import default_scenario
from sim.world import MAX_SUBSTEP_S, RealTimeStepper, World
from tests.sim.support import run, standing, world

DT = 0.02


def test_acceleration_and_speed_are_limited() -> None:
    w = world()
    robot = w.robots["r1"]
    lim = robot.limits
    robot.drive(5.0, 9.0, duration_s=30.0)  # far past the limits
    speeds = []
    for _ in range(150):
        w.step(DT)
        speeds.append(robot.velocity.linear)
    steps = [b - a for a, b in zip([0.0, *speeds], speeds, strict=False)]
    assert max(steps) <= lim.max_accel_mps2 * DT + 1e-9
    assert speeds[24] == pytest.approx(lim.max_accel_mps2 * 25 * DT)  # still speeding up
    assert max(speeds) == pytest.approx(lim.max_linear_mps)
    assert abs(robot.velocity.angular) == pytest.approx(lim.max_angular_rps)


def test_the_robot_brakes_to_zero_by_itself_at_the_commands_deadline() -> None:
    w = world()
    robot = w.robots["r1"]
    robot.drive(1.0, 0.0, duration_s=2.0)
    run(w, 2.0, DT)
    assert robot.velocity.linear == pytest.approx(1.0)
    braking = []
    for _ in range(50):
        w.step(DT)
        braking.append(robot.velocity.linear)
    decel = robot.limits.max_decel_mps2
    assert all(a - b <= decel * DT + 1e-9 for a, b in zip([1.0, *braking], braking, strict=False))
    assert braking[-1] == 0.0
    assert braking.index(0.0) * DT <= 1.0 / decel + DT


def test_a_new_command_replaces_the_old_deadline() -> None:
    w = world()
    robot = w.robots["r1"]
    robot.drive(0.5, 0.0, duration_s=0.5)
    run(w, 0.4, DT)
    robot.drive(0.5, 0.0, duration_s=1.0)
    run(w, 0.8, DT)
    assert robot.velocity.linear == pytest.approx(0.5)


def test_stop_brakes_at_full_deceleration_and_holds_until_release() -> None:
    w = world()
    robot = w.robots["r1"]
    robot.drive(1.0, 0.0, duration_s=60.0)
    run(w, 2.0, DT)
    robot.stop()
    robot.stop()  # idempotent
    w.step(0.25)
    assert robot.velocity.linear == pytest.approx(1.0 - robot.limits.max_decel_mps2 * 0.25)
    run(w, 1.0, DT)
    assert robot.velocity.linear == 0.0
    assert robot.stopped
    assert robot.drive(1.0, 0.0, duration_s=5.0) is False
    assert robot.follow_path([(10.0, 10.0)]) is False
    x = robot.pose.x
    run(w, 1.0, DT)
    assert robot.pose.x == x
    robot.release()
    assert not w.robots["r1"].stopped  # (a fresh expression: mypy narrowed `robot.stopped`)
    run(w, 1.0, DT)
    assert robot.pose.x == x  # released, but not told to move
    assert robot.drive(1.0, 0.0, duration_s=5.0) is True
    run(w, 1.0, DT)
    assert robot.pose.x > x


def test_path_following_reaches_every_waypoint_and_stops_on_the_last() -> None:
    w = world()
    robot = w.robots["r1"]
    waypoints = [(6.0, 10.0), (6.0, 14.0), (12.0, 14.0)]
    robot.follow_path(waypoints, speed_mps=1.0)
    visited = []
    for _ in range(round(40.0 / DT)):
        w.step(DT)
        p = robot.pose
        visited += [i for i, (x, y) in enumerate(waypoints) if math.hypot(p.x - x, p.y - y) < 0.3]
    assert sorted(set(visited)) == [0, 1, 2]
    end = robot.pose
    assert math.hypot(end.x - 12.0, end.y - 14.0) < 0.3
    assert robot.velocity.linear == 0.0
    assert robot.path == []


@pytest.mark.parametrize("kind", ["person", "forklift"])
def test_the_robot_stops_short_of_a_person_or_forklift_ahead(kind: str) -> None:
    w = world(actors=[standing("them", kind, 9.0, 10.0)])
    robot = w.robots["r1"]
    robot.drive(1.0, 0.0, duration_s=30.0)
    run(w, 20.0, DT)
    assert robot.velocity.linear == 0.0
    assert robot.blocked_by == "them"
    radius = {"person": 0.3, "forklift": 1.2}[kind]
    gap = 9.0 - robot.pose.x - robot.limits.radius_m - radius
    assert 0.0 < gap <= robot.limits.safety_distance_m


def test_the_robot_moves_on_once_the_way_is_clear() -> None:
    # a person crossing the robot's lane: it waits, then carries on
    crossing = {
        "id": "walker",
        "kind": "person",
        "path": [[6.0, 6.0], [6.0, 19.0]],
        "speed_mps": 1.0,
        "mode": "loop",
    }
    w = world(actors=[crossing])
    robot = w.robots["r1"]
    w.actors["walker"].speed_mps = 1.0  # no seeded jitter: the timing below depends on it
    robot.drive(0.8, 0.0, duration_s=30.0)
    blocked = set()
    for _ in range(round(12.0 / DT)):
        w.step(DT)
        blocked.add(robot.blocked_by)
    assert "walker" in blocked
    assert robot.pose.x > 8.0


def test_a_robot_stops_for_a_shelf_and_never_enters_it() -> None:
    shelf = {"name": "S1", "x": 8.0, "y": 8.0, "w": 2.0, "d": 4.0}
    w = world(shelves=[shelf])
    robot = w.robots["r1"]
    robot.drive(1.2, 0.0, duration_s=30.0)
    run(w, 15.0, DT)
    assert robot.blocked_by == "shelf:S1"
    assert robot.pose.x + robot.limits.radius_m < 8.0
    robot.drive(0.0, 1.0, duration_s=1.0)  # turning on the spot is always allowed
    run(w, 1.0, DT)
    assert robot.pose.heading != 0.0


def test_battery_drains_faster_when_driving_and_charges_on_a_charger() -> None:
    w = world(
        robots=[
            {"id": "mover", "x": 2.0, "y": 4.0},
            {"id": "idler", "x": 2.0, "y": 16.0},
            {"id": "parked", "x": 18.0, "y": 10.0, "battery_pct": 50.0},
        ],
        chargers=[{"name": "c1", "x": 18.0, "y": 10.0}],
    )
    w.robots["mover"].drive(1.0, 0.0, duration_s=60.0)
    run(w, 10.0, 0.1)
    mover, idler, parked = (w.robots[r].battery for r in ("mover", "idler", "parked"))
    assert mover.percent < idler.percent < 100.0
    assert not mover.charging
    assert parked.charging
    assert parked.percent == pytest.approx(50.0 + 10.0 * w.robots["parked"].limits.charge_pct_per_s)


def test_an_empty_battery_holds_the_robot_still() -> None:
    w = world()
    robot = w.robots["r1"]
    w.drain_battery("r1", 0.0)
    assert "battery_empty" in robot.faults
    robot.drive(1.0, 0.0, duration_s=5.0)
    run(w, 1.0, DT)
    assert robot.velocity.linear == 0.0


def test_driving_warms_the_robot_and_a_spike_shows_for_its_duration() -> None:
    w = world()
    robot = w.robots["r1"]
    ambient = robot.temperature_c
    robot.drive(1.2, 0.0, duration_s=10.0)
    run(w, 10.0, 0.1)
    assert robot.temperature_c > ambient
    w.spike_sensor("r1", "temperature_c", 95.0, duration_s=2.0)
    assert robot.temperature_c == 95.0
    assert robot.readings()["temperature_c"] == 95.0
    w.step(0.1)
    assert "overheat" in robot.faults
    run(w, 2.0, 0.1)
    assert robot.temperature_c < 40.0
    assert "overheat" not in robot.faults


def test_an_estop_fault_holds_the_robot_until_cleared() -> None:
    w = world()
    robot = w.robots["r1"]
    w.set_fault("r1", "estop")
    robot.drive(1.0, 0.0, duration_s=10.0)
    run(w, 1.0, DT)
    assert robot.velocity.linear == 0.0
    w.clear_fault("r1", "estop")
    run(w, 1.0, DT)
    assert robot.velocity.linear > 0.0


def test_fault_injection_names_what_exists() -> None:
    w = world()
    with pytest.raises(UnknownName, match=r"robots: \['r1'\]"):
        w.set_fault("r9", "estop")
    with pytest.raises(UnknownName, match="metrics"):
        w.spike_sensor("r1", "humidity", 1.0, 1.0)
    with pytest.raises(UnknownName, match="cameras"):
        w.freeze_camera("nope", 1.0)


def test_camera_faults_last_their_duration() -> None:
    w = world()
    w.blackout_camera("r1", 1.0)
    assert w.camera_fault("r1") == "blackout"
    w.step(1.0)
    assert w.camera_fault("r1") is None
    w.freeze_camera("r1", 0.5)
    assert w.camera_fault("r1") == "frozen"


def trajectory(seed: int, steps: list[float]) -> list[tuple[float, ...]]:
    w = World(default_scenario(), seed=seed)
    w.robots["robot-3"].follow_path([(12.0, 22.8), (18.0, 12.0)])
    w.robots["robot-1"].drive(0.8, 0.2, duration_s=5.0)
    out = []
    for dt in steps:
        w.step(dt)
        out.append(tuple(v for b in w.bodies() for v in (b.x, b.y, b.heading)))
    return out


def test_a_seed_gives_the_same_run_and_another_seed_another() -> None:
    steps = [0.05, 0.013, 0.2, 1.0, 0.07] * 8
    assert trajectory(3, steps) == trajectory(3, steps)
    assert trajectory(3, steps) != trajectory(4, steps)


def test_the_step_size_does_not_change_the_outcome() -> None:
    a = trajectory(1, [MAX_SUBSTEP_S] * 500)[-1]
    b = trajectory(1, [0.5] * 20)[-1]
    assert a == pytest.approx(b, abs=1e-6)


def test_people_and_forklifts_follow_their_paths() -> None:
    w = World(default_scenario(), seed=0)
    start = {a.id: (a.x, a.y) for a in w.actors.values()}
    w.step(10.0)
    moved = {a.id for a in w.actors.values() if (a.x, a.y) != start[a.id]}
    assert moved == set(start)
    assert {b.cls for b in w.bodies()} == {"person", "forklift", "robot"}


def test_zones_are_found_by_position() -> None:
    w = World(default_scenario(), seed=0)
    assert w.zones_at(32.5, 10.0) == ["danger"]
    assert w.zones_at(37.0, 10.0) == ["dock"]
    assert w.zones_at(20.0, 12.5) == []


def test_the_real_time_stepper_moves_the_world_on_its_own() -> None:
    w = world()
    with RealTimeStepper(w, rate_hz=100.0, speed=10.0):
        deadline = time.monotonic() + 5.0
        while w.time_s < 1.0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    settled = w.time_s
    time.sleep(0.05)
    assert w.time_s == settled  # stopped with the `with` block


def test_a_patrolling_robot_shuttles_until_a_stop_or_a_command_takes_over() -> None:
    world = World(default_scenario(3), seed=1)
    robot = world.robots["robot-1"]
    xs = []
    for _ in range(600):
        world.step(0.1)
        xs.append(robot.pose.x)
    assert min(xs) < 7  # there and back along its lane on its own
    assert max(xs) > 27
    robot.stop()
    robot.release()
    for _ in range(50):
        world.step(0.1)
    assert robot.velocity.linear == 0.0  # stopped robots stay put after a release
    assert robot.drive(0.3, 0.0, duration_s=1.0)
    world.step(0.5)
    assert robot.velocity.linear > 0.0
    world.step(3.0)
    assert robot.velocity.linear == 0.0  # the command lapsed; no patrol comes back


def test_an_actor_walked_somewhere_stays_there_and_may_appear_elsewhere_first() -> None:
    world = World(default_scenario(3), seed=1)
    person = world.actors["picker-1"]
    person.walk_to(10.0, 3.0, start=(10.0, 1.0))
    assert (person.x, person.y) == (10.0, 1.0)
    world.step(1.0)
    assert 1.0 < person.y < 3.0
    assert person.x == pytest.approx(10.0)
    for _ in range(100):
        world.step(0.1)
    assert (person.x, person.y) == (10.0, 3.0)  # arrived, and stays
    person.walk_to(12.0, 3.0)
    for _ in range(100):
        world.step(0.1)
    assert (person.x, person.y) == (12.0, 3.0)
