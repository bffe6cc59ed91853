"""Cameras: tight ground-truth boxes on the right things, occlusion, faults, randomisation."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from sim.render import (
    CLASSES,
    Camera,
    CameraPose,
    Optics,
    Randomisation,
    Scenery,
    View,
    cameras_for,
    render_view,
)
from sim.scenario import default_scenario
from sim.world import Body, World
from tests.sim.support import scenario, world

OPTICS = Optics(320, 240, 70.0)
# 3 m up at the south edge of an empty 20 x 20 m site, looking north and down
POSE = CameraPose(10.0, 0.5, 3.0, math.pi / 2, 0.35)
RADIUS = {"person": 0.3, "forklift": 1.2, "robot": 0.35}


def body(cls: str, x: float, y: float, heading: float = 0.3, ident: str = "b") -> Body:
    return Body(ident, cls, x, y, heading, 7, RADIUS[cls])  # type: ignore[arg-type]


def draw(bodies: list[Body], *, shelves: list[dict[str, object]] | None = None):
    scenery = Scenery(scenario(shelves=shelves or []))
    rng = np.random.default_rng(0)
    return render_view(scenery, View(POSE, OPTICS), bodies, rng, Randomisation.off())


@pytest.mark.parametrize("cls", CLASSES)
def test_a_box_is_tight_around_the_pixels_the_object_changed(cls: str) -> None:
    empty, none, _ = draw([])
    image, boxes, ids = draw([body(cls, 10.5, 8.0, ident="it")])
    assert none == []
    assert ids == ["it"]
    (box,) = boxes
    assert box.cls == cls
    changed = np.any(np.abs(image.astype(int) - empty.astype(int)) > 12, axis=2)
    x, y, w, h = cv2.boundingRect(changed.astype(np.uint8))
    # anti-aliased edges may change one pixel more than the object covers
    assert abs(box.x1 - x) <= 1
    assert abs(box.y1 - y) <= 1
    assert abs(box.x2 - (x + w)) <= 1
    assert abs(box.y2 - (y + h)) <= 1


def test_the_box_stands_where_the_object_stands() -> None:
    view = View(POSE, OPTICS)
    _, boxes, _ = draw([body("person", 8.0, 9.0)])
    (box,) = boxes
    feet = view.project(view.to_camera(np.array([[8.0, 9.0, 0.0]])))[0]
    assert box.x1 <= feet[0] <= box.x2
    assert abs(box.y2 - feet[1]) <= 3
    assert box.y2 - box.y1 > 2.5 * (box.x2 - box.x1)  # a person is tall and thin


def test_classes_are_told_apart_by_shape() -> None:
    person, forklift = body("person", 7.0, 9.0, ident="p"), body("forklift", 12, 10, 0, "f")
    _, boxes, ids = draw([person, forklift, body("robot", 9.5, 9.0, ident="r")])
    by_id = dict(zip(ids, boxes, strict=True))
    assert {b.cls for b in boxes} == {"person", "forklift", "robot"}

    def size(ident: str) -> tuple[int, int]:
        b = by_id[ident]
        return b.x2 - b.x1, b.y2 - b.y1

    (pw, ph), (fw, fh), (rw, rh) = size("p"), size("f"), size("r")
    assert ph > 2.5 * pw  # tall and thin
    assert rh < 1.5 * rw  # low and squat
    assert fw * fh > 4 * rw * rh  # a forklift dwarfs a robot
    assert rh < ph / 2


def test_every_box_lies_inside_the_image_and_objects_cut_by_its_edge_are_clipped() -> None:
    _, boxes, _ = draw([body("forklift", 4.0, 6.0, 1.0), body("person", 10.0, 30.0)])
    assert boxes
    for b in boxes:
        assert 0 <= b.x1 < b.x2 <= OPTICS.width
        assert 0 <= b.y1 < b.y2 <= OPTICS.height
    assert any(b.x1 == 0 for b in boxes)


def test_nothing_behind_the_camera_or_behind_a_shelf_gets_a_box() -> None:
    wall = [{"name": "S", "x": 6.0, "y": 5.0, "w": 8.0, "d": 1.0, "height_m": 3.0}]
    _, boxes, _ = draw([body("person", 10.0, -3.0)])
    assert boxes == []
    _, boxes, _ = draw([body("person", 10.0, 8.0)], shelves=wall)
    assert boxes == []


def test_a_partly_hidden_object_gets_the_box_of_what_shows() -> None:
    low_wall = [{"name": "S", "x": 6.0, "y": 5.0, "w": 8.0, "d": 1.0, "height_m": 1.2}]
    _, (whole,), _ = draw([body("forklift", 10.0, 8.0, 0.0)])
    _, (cut,), _ = draw([body("forklift", 10.0, 8.0, 0.0)], shelves=low_wall)
    assert cut.cls == "forklift"
    assert cut.y1 == pytest.approx(whole.y1, abs=1)  # the mast's top still shows
    assert cut.y2 < whole.y2 - 10  # the wheels do not


def test_the_same_rng_gives_the_same_frame_and_randomisation_varies_it() -> None:
    scenery = Scenery(default_scenario(), textures=3)
    view = View(CameraPose(20.0, 3.0, 4.0, 1.4, 0.4), OPTICS)
    bodies = [body("person", 20.0, 9.0)]

    def frame(seed: int, r: Randomisation):
        return render_view(scenery, view, bodies, np.random.default_rng(seed), r)

    a, boxes_a, _ = frame(5, Randomisation.strong())
    b, boxes_b, _ = frame(5, Randomisation.strong())
    c, _, _ = frame(6, Randomisation.strong())
    assert np.array_equal(a, b)
    assert boxes_a == boxes_b
    assert not np.array_equal(a, c)
    clean1, _, _ = frame(1, Randomisation.off())
    clean2, _, _ = frame(2, Randomisation.off())
    assert np.array_equal(clean1, clean2)


def test_world_cameras_see_the_worlds_actors_and_not_their_own_robot() -> None:
    w = World(default_scenario(), seed=0)
    cameras = cameras_for(w, Randomisation.off())
    assert set(cameras) == set(w.camera_names)
    rng = np.random.default_rng(0)
    seen: set[str] = set()
    for _ in range(6):
        w.step(4.0)
        for name, camera in cameras.items():
            frame = camera.render(w, rng)
            assert frame.image.shape == (camera.optics.height, camera.optics.width, 3)
            assert name not in frame.body_ids
            seen.update(frame.body_ids)
    assert seen & set(w.actors)
    assert seen & set(w.robots)


def test_a_robots_camera_moves_with_it() -> None:
    w = world()
    camera = Camera.on_robot(w.scenario.robot("r1"), randomisation=Randomisation.off())
    before = camera.pose_in(w)
    w.robots["r1"].drive(1.0, 0.0, duration_s=3.0)
    w.step(3.0)
    assert camera.pose_in(w).x > before.x + 1.0


def test_blackout_and_freeze_show_in_frames() -> None:
    w = World(default_scenario(), seed=0)
    camera = cameras_for(w, Randomisation.off())["cam-dock"]
    rng = np.random.default_rng(0)
    first = camera.render(w, rng)
    w.freeze_camera("cam-dock", 5.0)
    w.step(3.0)
    frozen = camera.render(w, rng)
    assert frozen.image is first.image
    w.step(3.0)
    assert not np.array_equal(camera.render(w, rng).image, first.image)
    w.blackout_camera("cam-dock", 1.0)
    black = camera.render(w, rng)
    assert black.boxes == []
    assert int(black.image.max()) == 0


def test_a_floor_zone_projects_into_the_agents_normalised_zone_format() -> None:
    w = World(default_scenario(), seed=0)
    view = cameras_for(w)["cam-dock"].view(w)
    danger = next(z for z in w.scenario.zones if z.name == "danger")
    polygon = view.floor_polygon(danger.polygon)
    assert len(polygon) >= 3
    assert all(0.0 <= u <= 1.0 and 0.0 <= v <= 1.0 for u, v in polygon)
    behind = [(30.0, -5.0), (40.0, -5.0), (40.0, -1.0)]
    assert view.floor_polygon(behind) == []
