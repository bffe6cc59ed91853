"""A simulator frame the shipped detector knows: a person and a forklift on an empty floor.

Rendered by `sim.render` (the images `models/outpost-sim-detector` was trained on), the
same every time: no randomisation, a fixed seed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import numpy.typing as npt

from sim.render import CameraPose, Optics, Randomisation, Scenery, View, render_view
from sim.world import Body
from tests.sim.support import scenario

WIDTH, HEIGHT = 640, 480
# 3 m up at the south edge of an empty 20 x 20 m site, looking north and down
POSE = CameraPose(10.0, 0.5, 3.0, math.pi / 2, 0.35)


def person_and_forklift() -> npt.NDArray[np.uint8]:
    """The BGR frame (640 x 480): a person on the left, a forklift on the right."""
    bodies = [
        Body("p", "person", 8.0, 7.0, 0.3, 7, 0.3),
        Body("f", "forklift", 12.0, 9.0, 0.0, 3, 1.2),
    ]
    view = View(POSE, Optics(WIDTH, HEIGHT, 70.0))
    rng = np.random.default_rng(0)
    image, _, _ = render_view(Scenery(scenario()), view, bodies, rng, Randomisation.off())
    return np.asarray(image, dtype=np.uint8)


def encoded(image: npt.NDArray[np.uint8], ext: str = ".jpg") -> bytes:
    """`image` as a JPEG (quality 95) or, with `ext=".png"`, a PNG."""
    params = [cv2.IMWRITE_JPEG_QUALITY, 95] if ext == ".jpg" else []
    ok, data = cv2.imencode(ext, image, params)
    assert ok
    return data.tobytes()
