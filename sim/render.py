"""Cameras: a pinhole view of the site drawn with OpenCV, with ground-truth boxes.

The floor (a top-down map of the site: concrete, lane lines, zones, chargers, docks)
is warped into the view through its homography; shelves, people, forklifts and robots
are boxes in 3-D, clipped at the near plane, shaded by a light direction and drawn far
to near. Each labelled object is also drawn, by number, into an id buffer, so its box
is the tight box of the pixels it still shows after occlusion and the image's edges.
Domain randomisation (`Randomisation`) varies light, colour, noise, blur, the floor's
texture and the objects' colours.

Classes, in label order (`CLASSES`): 0 `person`, 1 `forklift`, 2 `robot`. Boxes are in
pixel edges: `x2` and `y2` are exclusive, so `x1 / width` .. `x2 / width` is the
normalised extent. A camera mounted on a robot does not see that robot.

Example:
    >>> import numpy as np
    >>> from sim.scenario import default_scenario
    >>> from sim.world import World
    >>> world = World(default_scenario(), seed=0)
    >>> cameras = cameras_for(world)
    >>> sorted(cameras)
    ['cam-aisle', 'cam-charging', 'cam-dock', 'robot-1', 'robot-2', 'robot-3']
    >>> frame = cameras["cam-dock"].render(world, np.random.default_rng(0))
    >>> frame.image.shape, frame.image.dtype.name
    ((480, 640, 3), 'uint8')
    >>> all(box.cls in CLASSES and 0 <= box.x1 < box.x2 <= 640 for box in frame.boxes)
    True
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

import cv2
import numpy as np
import numpy.typing as npt

from sim.scenario import FixedCamera, Scenario
from sim.scenario import Robot as RobotSpec
from sim.world import Body, World

CLASSES = ("person", "forklift", "robot")
"""Detector classes, in YOLO label order."""
CLASS_INDEX = {name: i for i, name in enumerate(CLASSES)}

Image: TypeAlias = npt.NDArray[np.uint8]
Floats: TypeAlias = npt.NDArray[np.float64]
Colour: TypeAlias = tuple[float, float, float]

NEAR_M = 0.1
PIXELS_PER_M = 20
_SHIFT = 4  # sub-pixel bits for OpenCV's polygon drawing
_SCALE = 1 << _SHIFT


class GroundTruth(NamedTuple):
    """One labelled object: class name and pixel box (`x2`, `y2` exclusive)."""

    cls: str
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True, slots=True)
class Frame:
    """One rendered image (BGR uint8) and what is in it."""

    camera: str
    image: Image
    boxes: list[GroundTruth]
    body_ids: list[str]
    """The id of the body behind each box, in the same order."""
    time_s: float


@dataclass(frozen=True, slots=True)
class Randomisation:
    """Domain randomisation; each range is sampled once per frame, uniformly.

    `Randomisation.off()` gives clean, repeatable images; the default is the live
    cameras' mild setting; `Randomisation.strong()` is what datasets use.
    """

    brightness: tuple[float, float] = (0.85, 1.15)
    """Multiplier of the whole image's light."""
    contrast: tuple[float, float] = (0.9, 1.1)
    colour_jitter: float = 0.04
    """Largest relative change of each colour channel's gain."""
    gamma: tuple[float, float] = (0.9, 1.1)
    noise_sigma: tuple[float, float] = (0.0, 3.0)
    """Gaussian sensor noise, in 8-bit levels."""
    blur_probability: float = 0.1
    blur_sigma: tuple[float, float] = (0.5, 1.0)
    light_gradient: float = 0.15
    """Largest darkening across the image by a lighting gradient (0: none)."""
    textures: int = 1
    """How many floor textures to draw from (1: the plain one)."""
    recolour: bool = False
    """Whether object colours change every frame (datasets) or stay per object (live)."""

    @classmethod
    def off(cls) -> Randomisation:
        """No randomisation: the same image for the same world."""
        return cls(
            brightness=(1.0, 1.0),
            contrast=(1.0, 1.0),
            colour_jitter=0.0,
            gamma=(1.0, 1.0),
            noise_sigma=(0.0, 0.0),
            blur_probability=0.0,
            light_gradient=0.0,
        )

    @classmethod
    def strong(cls) -> Randomisation:
        """Wide ranges for training data."""
        return cls(
            brightness=(0.45, 1.35),
            contrast=(0.7, 1.3),
            colour_jitter=0.12,
            gamma=(0.7, 1.4),
            noise_sigma=(0.0, 10.0),
            blur_probability=0.35,
            blur_sigma=(0.5, 1.8),
            light_gradient=0.45,
            textures=6,
            recolour=True,
        )


@dataclass(frozen=True, slots=True)
class CameraPose:
    """Where a camera is: site metres, height, heading (rad from +x), down-tilt (rad)."""

    x: float
    y: float
    z: float
    heading: float
    pitch: float


@dataclass(frozen=True, slots=True)
class Optics:
    """Image size and horizontal field of view."""

    width: int
    height: int
    fov_deg: float

    @property
    def focal_px(self) -> float:
        """Focal length in pixels (square pixels)."""
        return (self.width / 2.0) / math.tan(math.radians(self.fov_deg) / 2.0)


class View:
    """A camera's projection: site points to pixels, with the depth along its axis."""

    def __init__(self, pose: CameraPose, optics: Optics) -> None:
        self.pose, self.optics = pose, optics
        ch, sh = math.cos(pose.heading), math.sin(pose.heading)
        cp, sp = math.cos(pose.pitch), math.sin(pose.pitch)
        forward = (ch * cp, sh * cp, -sp)
        right = (sh, -ch, 0.0)
        down = (-sp * ch, -sp * sh, -cp)
        self.rotation: Floats = np.array([right, down, forward], dtype=np.float64)
        self.centre: Floats = np.array([pose.x, pose.y, pose.z], dtype=np.float64)
        self.f = optics.focal_px
        self.cx, self.cy = optics.width / 2.0, optics.height / 2.0
        self.horizon_row = self.cy - self.f * math.tan(pose.pitch)

    def to_camera(self, points: Floats) -> Floats:
        """(n, 3) site points → (n, 3) camera coordinates (right, down, depth)."""
        out: Floats = (points - self.centre) @ self.rotation.T
        return out

    def project(self, cam: Floats) -> Floats:
        """(n, 3) camera coordinates (depth ≥ NEAR_M) → (n, 2) pixels."""
        out: Floats = np.empty((len(cam), 2), dtype=np.float64)
        out[:, 0] = self.f * cam[:, 0] / cam[:, 2] + self.cx
        out[:, 1] = self.f * cam[:, 1] / cam[:, 2] + self.cy
        return out

    def floor_homography(self) -> Floats:
        """3x3 map from floor points (x, y, 1) in metres to pixels."""
        k = np.array([[self.f, 0.0, self.cx], [0.0, self.f, self.cy], [0.0, 0.0, 1.0]])
        r = self.rotation
        t = -r @ self.centre
        h: Floats = k @ np.column_stack((r[:, 0], r[:, 1], t))
        return h

    def floor_polygon(self, polygon: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        """A floor polygon (site metres) as seen: normalised image points, clipped to the image.

        Empty when none of it is in view. This is the agent's zone format
        (`edge_agent.perception.zones`): a scenario zone drawn on this camera's image.
        """
        pts = np.array([(x, y, 0.0) for x, y in polygon], dtype=np.float64)
        cam = _clip_near(self.to_camera(pts))
        if len(cam) < 3:
            return []
        px = self.project(cam)
        w, h = self.optics.width, self.optics.height
        clipped = _clip_rect([(float(u) / w, float(v) / h) for u, v in px])
        return [
            (round(min(1.0, max(0.0, u)), 4), round(min(1.0, max(0.0, v)), 4)) for u, v in clipped
        ]


def _clip_near(cam: Floats) -> Floats:
    """Clip a convex polygon (camera coordinates) to depth ≥ NEAR_M (Sutherland-Hodgman)."""
    depth = cam[:, 2]
    if bool(np.all(depth >= NEAR_M)):
        return cam
    if bool(np.all(depth < NEAR_M)):
        return cam[:0]
    out: list[Floats] = []
    n = len(cam)
    for i in range(n):
        a, b = cam[i], cam[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR_M, b[2] >= NEAR_M
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (NEAR_M - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out, dtype=np.float64).reshape(-1, 3)


def _clip_rect(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Clip a polygon to the unit square (Sutherland-Hodgman, one edge at a time)."""
    edges = ((0, 0.0, 1.0), (0, 1.0, -1.0), (1, 0.0, 1.0), (1, 1.0, -1.0))
    for axis, bound, sign in edges:
        if not points:
            break
        kept: list[tuple[float, float]] = []
        for i, a in enumerate(points):
            b = points[(i + 1) % len(points)]
            a_in, b_in = sign * (a[axis] - bound) >= 0, sign * (b[axis] - bound) >= 0
            if a_in:
                kept.append(a)
            if a_in != b_in:
                t = (bound - a[axis]) / (b[axis] - a[axis])
                kept.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        points = kept
    return points


# --- the floor --------------------------------------------------------------------------


class Scenery:
    """What does not move: the floor textures and shelf geometry of one scenario.

    Built once and shared by every camera of a world (thread-safe to read).
    """

    def __init__(self, scenario: Scenario, *, textures: int = 1, seed: int = 0) -> None:
        self.scenario = scenario
        rng = np.random.default_rng(seed)
        self.floors: list[Image] = [
            _draw_floor(scenario, rng, plain=(i == 0)) for i in range(max(1, textures))
        ]
        site = scenario.site
        # floor texture pixel (col, row) -> site metres; row 0 is the north edge
        self.texture_to_site: Floats = np.array(
            [
                [1.0 / PIXELS_PER_M, 0.0, 0.5 / PIXELS_PER_M],
                [0.0, -1.0 / PIXELS_PER_M, site.height_m - 0.5 / PIXELS_PER_M],
                [0.0, 0.0, 1.0],
            ]
        )
        self.shelf_faces = block_faces(_shelf_cells(scenario))


def _draw_floor(scenario: Scenario, rng: np.random.Generator, *, plain: bool) -> Image:
    site = scenario.site
    w, h = round(site.width_m * PIXELS_PER_M), round(site.height_m * PIXELS_PER_M)
    palette = ((150, 150, 146), (120, 140, 120), (150, 160, 170), (110, 120, 135), (170, 165, 160))
    base = palette[0] if plain else palette[int(rng.integers(len(palette)))]
    blotches = rng.normal(0.0, 1.0 if plain else 2.5, size=(h // 16 + 1, w // 16 + 1, 1))
    shade = cv2.resize(blotches, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, 1)
    grain = rng.normal(0.0, 4.0, size=(h, w, 1))
    floor = np.clip(np.array(base, dtype=np.float64) + 6.0 * shade + grain, 0, 255)
    image: Image = floor.astype(np.uint8)
    if not plain and rng.random() < 0.5:
        step = int(rng.integers(15, 40))
        image[::step, :] = (image[::step, :] * 0.8).astype(np.uint8)
        image[:, ::step] = (image[:, ::step] * 0.8).astype(np.uint8)

    def px(x: float, y: float) -> tuple[int, int]:
        return round(x * PIXELS_PER_M), round((site.height_m - y) * PIXELS_PER_M)

    def poly(points: Iterable[tuple[float, float]]) -> npt.NDArray[np.int32]:
        return np.array([px(x, y) for x, y in points], dtype=np.int32)

    zone_colours = {"danger": (40, 40, 190), "dock": (160, 110, 60), "charging": (60, 150, 60)}
    for zone in scenario.zones:
        colour = zone_colours.get(zone.name, (90, 90, 90))
        overlay = image.copy()
        cv2.fillPoly(overlay, [poly(zone.polygon)], colour)
        image = np.asarray(cv2.addWeighted(overlay, 0.25, image, 0.75, 0), dtype=np.uint8)
        cv2.polylines(image, [poly(zone.polygon)], True, (30, 200, 230), 3)
    for shelf in scenario.shelves:  # yellow lane lines around each shelf run
        a = px(shelf.x - 0.3, shelf.y - 0.3)
        b = px(shelf.x + shelf.w + 0.3, shelf.y + shelf.d + 0.3)
        cv2.rectangle(image, a, b, (20, 190, 230), 2)
    for spot in scenario.chargers:
        cv2.circle(image, px(spot.x, spot.y), round(spot.radius_m * PIXELS_PER_M), (50, 170, 50), 3)
    for spot in scenario.docks:
        r = spot.radius_m
        cv2.rectangle(
            image, px(spot.x - r, spot.y - r), px(spot.x + r, spot.y + r), (40, 40, 40), 3
        )
    return image


# --- solid things -------------------------------------------------------------------------

_UNIT_BOX = np.array(
    [
        # faces of the unit cube [-.5, .5]^2 x [0, 1], corners counter-clockwise seen from outside
        [[0.5, -0.5, 0], [0.5, 0.5, 0], [0.5, 0.5, 1], [0.5, -0.5, 1]],  # +x (front)
        [[-0.5, 0.5, 0], [-0.5, -0.5, 0], [-0.5, -0.5, 1], [-0.5, 0.5, 1]],  # -x
        [[0.5, 0.5, 0], [-0.5, 0.5, 0], [-0.5, 0.5, 1], [0.5, 0.5, 1]],  # +y
        [[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, -0.5, 1], [-0.5, -0.5, 1]],  # -y
        [[0.5, -0.5, 1], [0.5, 0.5, 1], [-0.5, 0.5, 1], [-0.5, -0.5, 1]],  # top
    ],
    dtype=np.float64,
)
_UNIT_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1]], np.float64)


@dataclass(frozen=True, slots=True)
class Block:
    """An oriented box: centre of its base, heading, size along/across heading, z range."""

    x: float
    y: float
    heading: float
    length: float
    width: float
    z0: float
    z1: float
    colour: Colour
    faces: tuple[int, ...] = (0, 1, 2, 3, 4)
    """Which of the unit box's faces exist (inner faces of a shelf run are left out)."""


class _Poly(NamedTuple):
    depth: float
    pts: npt.NDArray[np.int32]  # fixed point, _SHIFT fractional bits
    colour: Colour


class _Circle(NamedTuple):
    depth: float
    centre: tuple[int, int]  # fixed point, _SHIFT fractional bits
    radius: int
    colour: Colour


@dataclass(slots=True)
class _Shape:
    """One labelled (or occluding) object's drawable parts, in pixels."""

    label: int  # id-buffer value; 0 for scenery
    polygons: list[_Poly] = field(default_factory=list)
    circles: list[_Circle] = field(default_factory=list)


def _shelf_cells(scenario: Scenario) -> list[Block]:
    """Shelf runs cut into cells about 1.2 m long, so far-to-near drawing stays right."""
    cells: list[Block] = []
    for shelf in scenario.shelves:
        along_x = shelf.w >= shelf.d
        length, depth = (shelf.w, shelf.d) if along_x else (shelf.d, shelf.w)
        n = max(1, round(length / 1.2))
        for i in range(n):
            offset = (i + 0.5) * length / n
            x, y = (
                (shelf.x + offset, shelf.y + shelf.d / 2)
                if along_x
                else (shelf.x + shelf.w / 2, shelf.y + offset)
            )
            faces = [2, 3, 4]
            if i == 0:
                faces.append(1)
            if i == n - 1:
                faces.append(0)
            heading = 0.0 if along_x else math.pi / 2
            tone = 0.85 + 0.3 * ((i * 7 + len(shelf.name)) % 5) / 4
            colour = (60 * tone, 110 * tone, 150 * tone)  # cardboard
            cells.append(
                Block(x, y, heading, length / n, depth, 0.0, shelf.height_m, colour, tuple(faces))
            )
    return cells


def _body_blocks(body: Body, look: int) -> tuple[list[Block], list[tuple[Floats, float, Colour]]]:
    """A body as blocks, plus spheres (centre, radius, colour) for heads."""
    rng = np.random.default_rng(look)
    if body.cls == "person":
        return _person(body, rng)
    if body.cls == "forklift":
        return _forklift(body, rng), []
    return _robot(body, rng), []


def _rand_colour(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> Colour:
    c = rng.integers(lo, hi, size=3)
    return (float(c[0]), float(c[1]), float(c[2]))


def _local(body: Body, forward: float, left: float) -> tuple[float, float]:
    ch, sh = math.cos(body.heading), math.sin(body.heading)
    return body.x + forward * ch - left * sh, body.y + forward * sh + left * ch


def _person(
    body: Body, rng: np.random.Generator
) -> tuple[list[Block], list[tuple[Floats, float, Colour]]]:
    height = float(rng.uniform(1.6, 1.9))
    s = height / 1.75
    trousers = [(40, 40, 40), (90, 60, 30), (70, 70, 70), (60, 90, 120)][int(rng.integers(4))]
    vest = rng.random() < 0.5
    shirt = ((20, 230, 240) if rng.random() < 0.5 else (0, 140, 255)) if vest else _rand_colour(rng)
    skin = [(140, 170, 220), (90, 130, 180), (60, 90, 130), (120, 160, 200)][int(rng.integers(4))]
    h = body.heading
    blocks = []
    for side in (-0.1, 0.1):
        x, y = _local(body, 0.0, side * s)
        blocks.append(Block(x, y, h, 0.2 * s, 0.16 * s, 0.0, 0.86 * s, trousers))
    blocks.append(Block(body.x, body.y, h, 0.26 * s, 0.44 * s, 0.84 * s, 1.46 * s, shirt))
    for side in (-0.27, 0.27):
        x, y = _local(body, 0.0, side * s)
        blocks.append(Block(x, y, h, 0.12 * s, 0.1 * s, 0.9 * s, 1.44 * s, shirt))
    head_colour: Colour = skin
    spheres = [(np.array([body.x, body.y, 1.62 * s]), 0.12 * s, head_colour)]
    if rng.random() < 0.6:  # a hard hat
        hat = [(240, 240, 240), (20, 220, 240), (200, 120, 30), (30, 130, 250)][
            int(rng.integers(4))
        ]
        spheres.append((np.array([body.x, body.y, 1.68 * s]), 0.115 * s, hat))
    return blocks, spheres


def _forklift(body: Body, rng: np.random.Generator) -> list[Block]:
    paint = [(0, 160, 240), (20, 200, 240), (30, 30, 200), (40, 140, 40), (10, 110, 230)]
    colour = paint[int(rng.integers(len(paint)))]
    dark: Colour = (35, 35, 40)
    h = body.heading

    def at(forward: float, left: float) -> tuple[float, float]:
        return _local(body, forward, left)

    blocks = [
        Block(*at(-0.1, 0.0), h, 1.7, 1.05, 0.15, 1.05, colour),  # body
        Block(*at(-0.85, 0.0), h, 0.4, 1.05, 0.15, 1.25, colour),  # counterweight
    ]
    for f in (-0.75, 0.45):
        for side in (-0.48, 0.48):
            blocks.append(Block(*at(f, side), h, 0.07, 0.07, 1.05, 2.1, dark))  # guard posts
            blocks.append(Block(*at(f, side * 1.02), h, 0.5, 0.2, 0.0, 0.5, (20, 20, 20)))  # wheels
    blocks.append(Block(*at(-0.15, 0.0), h, 1.3, 1.05, 2.1, 2.18, dark))  # overhead guard
    for side in (-0.32, 0.32):
        blocks.append(Block(*at(0.82, side), h, 0.12, 0.1, 0.05, 2.5, dark))  # mast
        blocks.append(Block(*at(1.45, side), h, 1.1, 0.1, 0.08, 0.16, (90, 90, 90)))  # forks
    if rng.random() < 0.5:  # a pallet on the forks
        blocks.append(Block(*at(1.45, 0.0), h, 1.0, 1.0, 0.16, 0.9, (70, 120, 170)))
    return blocks


def _robot(body: Body, rng: np.random.Generator) -> list[Block]:
    shells = [(60, 60, 60), (220, 220, 220), (160, 90, 30), (40, 40, 120), (230, 230, 240)]
    colour = shells[int(rng.integers(len(shells)))]
    r = body.radius_m
    h = body.heading
    top = tuple(min(255.0, c + 40.0) for c in colour)
    lidar_x, lidar_y = _local(body, 0.15 * r / 0.35, 0.0)
    return [
        Block(body.x, body.y, h, 2.0 * r, 1.7 * r, 0.05, 0.42, colour),
        Block(body.x, body.y, h, 1.8 * r, 1.5 * r, 0.42, 0.48, (top[0], top[1], top[2])),
        Block(lidar_x, lidar_y, h, 0.14, 0.14, 0.48, 0.62, (25, 25, 25)),
        Block(*_local(body, 0.99 * r, 0.0), h, 0.04, 1.2 * r, 0.2, 0.3, (40, 200, 40)),
    ]


# --- drawing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Faces:
    """Block faces in site coordinates: corners (n, 4, 3), outward normals (n, 3), colours."""

    corners: Floats
    normals: Floats
    colours: Floats


def block_faces(blocks: Sequence[Block]) -> Faces:
    """Every existing face of the blocks, computed in one pass."""
    if not blocks:
        empty = np.zeros((0, 3))
        return Faces(np.zeros((0, 4, 3)), empty, empty)
    p = np.array(
        [(b.x, b.y, b.heading, b.length, b.width, b.z0, b.z1 - b.z0) for b in blocks],
        dtype=np.float64,
    )
    keep = np.zeros((len(blocks), len(_UNIT_BOX)), dtype=np.bool_)
    for i, b in enumerate(blocks):
        keep[i, list(b.faces)] = True
    scale = p[:, None, None, 3:7:1][..., [0, 1, 3]]  # length, width, height
    local = _UNIT_BOX[None] * scale
    local[..., 2] += p[:, None, None, 5]
    cos, sin = np.cos(p[:, 2])[:, None, None], np.sin(p[:, 2])[:, None, None]
    world = np.empty_like(local)
    world[..., 0] = local[..., 0] * cos - local[..., 1] * sin + p[:, None, None, 0]
    world[..., 1] = local[..., 0] * sin + local[..., 1] * cos + p[:, None, None, 1]
    world[..., 2] = local[..., 2]
    n = _UNIT_NORMALS[None]
    normals = np.empty((len(blocks), len(_UNIT_BOX), 3))
    normals[..., 0] = n[..., 0] * cos[..., 0] - n[..., 1] * sin[..., 0]
    normals[..., 1] = n[..., 0] * sin[..., 0] + n[..., 1] * cos[..., 0]
    normals[..., 2] = n[..., 2]
    colours = np.repeat(np.array([b.colour for b in blocks])[:, None, :], len(_UNIT_BOX), axis=1)
    return Faces(world[keep], normals[keep], colours[keep])


class _Painter:
    """Turns faces and spheres into pixel shapes for one view and light."""

    def __init__(self, view: View, light: Floats, ambient: float) -> None:
        self.view, self.light, self.ambient = view, light, ambient

    def faces(self, shape: _Shape, faces: Faces) -> None:
        view = self.view
        centres = faces.corners.mean(axis=1)
        towards = view.centre - centres
        facing = np.einsum("ij,ij->i", faces.normals, towards) > 0.0
        if not bool(facing.any()):
            return
        corners, normals = faces.corners[facing], faces.normals[facing]
        depths = np.linalg.norm(towards[facing], axis=1)
        cam = (corners - view.centre) @ view.rotation.T
        z = cam[..., 2]
        whole = np.all(z >= NEAR_M, axis=1)
        px = np.empty((*cam.shape[:2], 2))
        safe_z = np.where(z >= NEAR_M, z, 1.0)
        px[..., 0] = view.f * cam[..., 0] / safe_z + view.cx
        px[..., 1] = view.f * cam[..., 1] / safe_z + view.cy
        w, h = view.optics.width, view.optics.height
        off = (
            np.all(px[..., 0] < 0, axis=1)
            | np.all(px[..., 0] > w, axis=1)
            | np.all(px[..., 1] < 0, axis=1)
            | np.all(px[..., 1] > h, axis=1)
        )
        whole &= ~off  # faces wholly off the image are neither drawn nor clipped
        fixed = np.round(np.clip(px, -1e5, 1e5) * _SCALE).astype(np.int32)
        lit = self.ambient + (1.0 - self.ambient) * np.maximum(0.0, normals @ self.light)
        colours = faces.colours[facing] * lit[:, None]
        for i in np.flatnonzero(whole | ~(off | np.all(z < NEAR_M, axis=1))):
            colour = (float(colours[i, 0]), float(colours[i, 1]), float(colours[i, 2]))
            if whole[i]:
                shape.polygons.append(_Poly(float(depths[i]), fixed[i], colour))
                continue
            clipped = _clip_near(cam[i])
            if len(clipped) >= 3:
                pts = np.round(np.clip(view.project(clipped), -1e5, 1e5) * _SCALE)
                shape.polygons.append(_Poly(float(depths[i]), pts.astype(np.int32), colour))

    def spheres(self, shape: _Shape, spheres: Iterable[tuple[Floats, float, Colour]]) -> None:
        for centre, radius, colour in spheres:
            cam = self.view.to_camera(centre.reshape(1, 3))
            if cam[0, 2] < NEAR_M + radius:
                continue
            u, v = self.view.project(cam)[0]
            r = self.view.f * radius / cam[0, 2]
            depth = float(np.linalg.norm(centre - self.view.centre)) - radius
            lit = self.ambient + (1.0 - self.ambient) * 0.8
            centre_px = (round(u * _SCALE), round(v * _SCALE))
            shaded = (colour[0] * lit, colour[1] * lit, colour[2] * lit)
            shape.circles.append(_Circle(depth, centre_px, max(1, round(r * _SCALE)), shaded))


def _paint(image: Image, ids: Image, shapes: Iterable[_Shape]) -> None:
    """Draw every part far to near, in colour and (by label) into the id buffer."""
    parts: list[tuple[float, int, _Poly | _Circle]] = []
    for shape in shapes:
        parts += [(p.depth, shape.label, p) for p in shape.polygons]
        parts += [(c.depth, shape.label, c) for c in shape.circles]
    parts.sort(key=lambda p: -p[0])
    for _, label, part in parts:
        if isinstance(part, _Poly):
            cv2.fillConvexPoly(image, part.pts, part.colour, cv2.LINE_AA, _SHIFT)
            cv2.fillConvexPoly(ids, part.pts, label, cv2.LINE_8, _SHIFT)
        else:
            cv2.circle(image, part.centre, part.radius, part.colour, -1, cv2.LINE_AA, _SHIFT)
            cv2.circle(ids, part.centre, part.radius, label, -1, cv2.LINE_8, _SHIFT)


def _extent(shape: _Shape, width: int, height: int) -> tuple[int, int, int, int] | None:
    """The shape's pixel bounds, unoccluded, clipped to the image; None when off it."""
    if not shape.polygons and not shape.circles:
        return None
    points = [p.pts for p in shape.polygons]
    for c in shape.circles:
        (u, v), r = c.centre, c.radius
        points.append(np.array([[u - r, v - r], [u + r, v + r]], dtype=np.int32))
    every = np.concatenate(points)
    lo, hi = every.min(axis=0), every.max(axis=0)
    x1 = max(0, int(lo[0]) // _SCALE - 1)
    y1 = max(0, int(lo[1]) // _SCALE - 1)
    x2 = min(width, -(-int(hi[0]) // _SCALE) + 2)
    y2 = min(height, -(-int(hi[1]) // _SCALE) + 2)
    if x2 <= x1 or y2 <= y1:
        return None
    return x1, y1, x2, y2


def _alone_pixels(shape: _Shape, roi: tuple[int, int, int, int]) -> int:
    """How many pixels the shape covers inside `roi` with nothing in front of it."""
    x1, y1, x2, y2 = roi
    mask = np.zeros((y2 - y1, x2 - x1), dtype=np.uint8)
    offset = np.array([x1 * _SCALE, y1 * _SCALE], dtype=np.int32)
    for poly in shape.polygons:
        cv2.fillConvexPoly(mask, poly.pts - offset, 1, cv2.LINE_8, _SHIFT)
    for circle in shape.circles:
        (u, v), r = circle.centre, circle.radius
        centre = (u - int(offset[0]), v - int(offset[1]))
        cv2.circle(mask, centre, r, 1, -1, cv2.LINE_8, _SHIFT)
    return int(cv2.countNonZero(mask))


@dataclass(frozen=True, slots=True)
class Visibility:
    """When a partly hidden or cut-off object still gets a box."""

    min_fraction: float = 0.3
    """Of its pixels that would show with nothing in front of it."""
    min_pixels: int = 12
    min_side: int = 3


def render_view(
    scenery: Scenery,
    view: View,
    bodies: Sequence[Body],
    rng: np.random.Generator,
    randomisation: Randomisation,
    *,
    visibility: Visibility = Visibility(),
) -> tuple[Image, list[GroundTruth], list[str]]:
    """Draw `bodies` in the scenery as `view` sees it; the image, boxes and body ids."""
    width, height = view.optics.width, view.optics.height
    floor = scenery.floors[int(rng.integers(min(len(scenery.floors), randomisation.textures)))]
    image = _floor(scenery, floor, view)
    ids = np.zeros((height, width), dtype=np.uint8)
    azimuth = float(rng.uniform(0.0, 2.0 * math.pi))
    elevation = float(rng.uniform(0.5, 1.2)) if randomisation.recolour else 0.9
    if not randomisation.recolour:
        azimuth = 0.7
    light = np.array(
        [
            math.cos(azimuth) * math.cos(elevation),
            math.sin(azimuth) * math.cos(elevation),
            math.sin(elevation),
        ]
    )
    painter = _Painter(view, light, ambient=0.55)
    scenery_shape = _Shape(0)
    painter.faces(scenery_shape, scenery.shelf_faces)
    shapes: list[tuple[_Shape, Body]] = []
    for i, body in enumerate(bodies[:254]):
        shape = _Shape(i + 1)
        look = int(rng.integers(1 << 30)) if randomisation.recolour else body.look
        blocks, spheres = _body_blocks(body, look)
        painter.faces(shape, block_faces(blocks))
        painter.spheres(shape, spheres)
        shapes.append((shape, body))
    _paint(image, ids, [scenery_shape, *(s for s, _ in shapes)])
    boxes, body_ids = _ground_truth(shapes, ids, visibility)
    return _randomise(image, rng, randomisation), boxes, body_ids


def _ground_truth(
    shapes: list[tuple[_Shape, Body]], ids: Image, visibility: Visibility
) -> tuple[list[GroundTruth], list[str]]:
    height, width = ids.shape
    boxes: list[GroundTruth] = []
    body_ids: list[str] = []
    for shape, body in shapes:
        roi = _extent(shape, width, height)
        if roi is None:
            continue
        x1, y1, x2, y2 = roi
        visible = np.asarray(ids[y1:y2, x1:x2] == shape.label, dtype=np.uint8)
        shown = int(cv2.countNonZero(visible))
        if shown < visibility.min_pixels:
            continue
        if shown < visibility.min_fraction * _alone_pixels(shape, roi):
            continue
        bx, by, bw, bh = cv2.boundingRect(visible)
        if min(bw, bh) < visibility.min_side:
            continue
        boxes.append(GroundTruth(body.cls, x1 + bx, y1 + by, x1 + bx + bw, y1 + by + bh))
        body_ids.append(body.id)
    return boxes, body_ids


def _floor(scenery: Scenery, floor: Image, view: View) -> Image:
    width, height = view.optics.width, view.optics.height
    h = view.floor_homography() @ scenery.texture_to_site
    image = np.asarray(
        cv2.warpPerspective(
            floor,
            h,
            (width, height),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(70, 75, 80),
        ),
        dtype=np.uint8,
    )
    horizon = math.floor(view.horizon_row) + 1
    if horizon > 0:  # above the horizon: the far wall, lighter towards the roof
        rows = min(height, horizon)
        ramp = np.linspace(200.0, 120.0, rows).reshape(rows, 1, 1)
        image[:rows] = np.clip(ramp * np.array([0.95, 0.97, 1.0]), 0, 255).astype(np.uint8)
    return image


def _randomise(image: Image, rng: np.random.Generator, r: Randomisation) -> Image:
    gain = rng.uniform(*r.brightness) * (1.0 + rng.uniform(-r.colour_jitter, r.colour_jitter, 3))
    contrast = float(rng.uniform(*r.contrast))
    gamma = float(rng.uniform(*r.gamma))
    levels = np.arange(256, dtype=np.float64) / 255.0
    curves = [np.clip(((levels**gamma - 0.5) * contrast + 0.5) * g * 255.0, 0, 255) for g in gain]
    lut = np.stack(curves, axis=-1).astype(np.uint8).reshape(256, 1, 3)
    out = np.asarray(cv2.LUT(image, lut), dtype=np.uint8)
    if r.light_gradient > 0.0:
        out = _gradient(out, rng, float(rng.uniform(0.0, r.light_gradient)))
    if rng.random() < r.blur_probability:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*r.blur_sigma))), np.uint8)
    sigma = float(rng.uniform(*r.noise_sigma))
    if sigma > 0.0:
        h, w = out.shape[:2]
        bank = _noise_bank(h, w)
        oy, ox = int(rng.integers(h)), int(rng.integers(w))
        noise = bank[oy : oy + h, ox : ox + w]
        a = sigma / _NOISE_SD
        out = np.asarray(cv2.addWeighted(out, 1.0, noise, a, -128.0 * a), dtype=np.uint8)
    return out


_NOISE_SD = 32.0
_noise_banks: dict[tuple[int, int], Image] = {}


def _noise_bank(h: int, w: int) -> Image:
    """Gaussian noise (mean 128, sd `_NOISE_SD`) twice the image's size, made once per size;
    each frame takes a random window of it, which is far cheaper than fresh noise."""
    bank = _noise_banks.get((h, w))
    if bank is None:
        normal = np.random.default_rng(12345).standard_normal((2 * h, 2 * w, 3), np.float32)
        bank = np.clip(128.0 + _NOISE_SD * normal, 0, 255).astype(np.uint8)
        _noise_banks[(h, w)] = bank
    return bank


def _gradient(image: Image, rng: np.random.Generator, depth: float) -> Image:
    """Darken the image by up to `depth` along a random direction (uneven lighting)."""
    h, w = image.shape[:2]
    angle = float(rng.uniform(0.0, 2.0 * math.pi))
    ys, xs = np.ogrid[0:16, 0:16]
    ramp = (xs / 15 - 0.5) * math.cos(angle) + (ys / 15 - 0.5) * math.sin(angle)
    small = (255.0 * (1.0 - depth * (ramp + 0.71) / 1.42)).astype(np.uint8)
    scale = cv2.resize(np.repeat(small[..., None], 3, axis=2), (w, h))
    return np.asarray(cv2.multiply(image, scale, scale=1.0 / 255.0), dtype=np.uint8)


# --- cameras ------------------------------------------------------------------------------


class Camera:
    """A fixed site camera, or a robot's front camera that moves with it.

    `render()` honours the world's camera faults: `frozen` repeats the last frame,
    `blackout` gives a black one with no boxes.
    """

    def __init__(
        self,
        name: str,
        optics: Optics,
        *,
        pose: CameraPose | None = None,
        mount: RobotSpec | None = None,
        scenery: Scenery | None = None,
        randomisation: Randomisation | None = None,
    ) -> None:
        if (pose is None) == (mount is None or mount.camera is None):
            raise ValueError("a camera has either a fixed pose or a robot with a camera")
        self.name, self.optics = name, optics
        self.fixed_pose, self.mount = pose, mount
        self.scenery = scenery
        self.randomisation = randomisation or Randomisation()
        self._last: Frame | None = None
        self._lock = threading.Lock()

    @classmethod
    def fixed(
        cls,
        spec: FixedCamera,
        *,
        scenery: Scenery | None = None,
        randomisation: Randomisation | None = None,
    ) -> Camera:
        """A camera from the scenario's `cameras` list."""
        pose = CameraPose(spec.x, spec.y, spec.z, spec.heading, spec.pitch_rad)
        optics = Optics(spec.width, spec.height, spec.fov_deg)
        return cls(spec.name, optics, pose=pose, scenery=scenery, randomisation=randomisation)

    @classmethod
    def on_robot(
        cls,
        robot: RobotSpec,
        *,
        scenery: Scenery | None = None,
        randomisation: Randomisation | None = None,
    ) -> Camera:
        """The robot's front camera, named after the robot."""
        if robot.camera is None:
            raise ValueError(f"robot {robot.id!r} has no camera")
        optics = Optics(robot.camera.width, robot.camera.height, robot.camera.fov_deg)
        return cls(robot.id, optics, mount=robot, scenery=scenery, randomisation=randomisation)

    def pose_in(self, world: World) -> CameraPose:
        """Where the camera is now."""
        if self.fixed_pose is not None:
            return self.fixed_pose
        mount = self.mount
        if mount is None or mount.camera is None:  # pragma: no cover - __init__ forbids it
            raise ValueError(f"camera {self.name!r} has neither a pose nor a mount")
        p = world.robot(mount.id).pose
        forward = mount.limits.radius_m
        x, y = p.x + forward * math.cos(p.heading), p.y + forward * math.sin(p.heading)
        return CameraPose(x, y, mount.camera.height_m, p.heading, mount.camera.pitch_rad)

    def view(self, world: World) -> View:
        """The projection as of now (for zones: `view(world).floor_polygon(...)`)."""
        return View(self.pose_in(world), self.optics)

    def render(self, world: World, rng: np.random.Generator) -> Frame:
        """The camera's image now, with ground-truth boxes."""
        with self._lock:
            if self.scenery is None or self.scenery.scenario is not world.scenario:
                self.scenery = Scenery(world.scenario, textures=self.randomisation.textures)
            fault = world.camera_fault(self.name)
            if fault == "frozen" and self._last is not None:
                return self._last
            with world.lock:
                view, now = self.view(world), world.time_s
                bodies = [b for b in world.bodies() if self.mount is None or b.id != self.mount.id]
            if fault == "blackout":
                black = np.zeros((self.optics.height, self.optics.width, 3), dtype=np.uint8)
                return Frame(self.name, black, [], [], now)
            image, boxes, ids = render_view(self.scenery, view, bodies, rng, self.randomisation)
            self._last = Frame(self.name, image, boxes, ids, now)
            return self._last


def cameras_for(world: World, randomisation: Randomisation | None = None) -> dict[str, Camera]:
    """Every camera of the world's scenario (fixed ones, then robots'), sharing one scenery."""
    randomisation = randomisation or Randomisation()
    scenery = Scenery(world.scenario, textures=randomisation.textures)
    scenario = world.scenario
    cameras = [
        Camera.fixed(c, scenery=scenery, randomisation=randomisation) for c in scenario.cameras
    ]
    cameras += [
        Camera.on_robot(r, scenery=scenery, randomisation=randomisation)
        for r in scenario.robots
        if r.camera is not None
    ]
    return {c.name: c for c in cameras}


def yolo_labels(boxes: Sequence[GroundTruth], width: int, height: int) -> list[str]:
    """YOLO label lines `class cx cy w h` (normalised) for the boxes.

    Example:
        >>> yolo_labels([GroundTruth("forklift", 10, 20, 30, 60)], 100, 100)
        ['1 0.200000 0.400000 0.200000 0.400000']
    """
    lines = []
    for b in boxes:
        cx, cy = (b.x1 + b.x2) / 2.0 / width, (b.y1 + b.y2) / 2.0 / height
        w, h = (b.x2 - b.x1) / width, (b.y2 - b.y1) / height
        lines.append(f"{CLASS_INDEX[b.cls]} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def class_counts(boxes: Iterable[GroundTruth]) -> Mapping[str, int]:
    """How many boxes of each class."""
    counts = dict.fromkeys(CLASSES, 0)
    for b in boxes:
        counts[b.cls] += 1
    return counts
