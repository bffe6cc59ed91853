"""The detector Outpost ships: `models/outpost-sim-detector/` in the source tree.

Trained by `training/` on simulator images (person, forklift, robot), small enough for
an edge CPU; its `card.json` beside it gives mAP on a held-out simulated set, CPU latency
and the drift baseline. An agent with cameras (or with `[detect_api]` on) runs it when
`[perception] model` is not set and no model was activated from the hub, unless
`[perception] default_model = false`.

    >>> shipped_model() in (None, SHIPPED_MODEL)
    True
"""

from __future__ import annotations

from pathlib import Path

SHIPPED_NAME = "outpost-sim-detector"
SHIPPED_MODEL = Path(__file__).resolve().parents[2] / "models" / SHIPPED_NAME / "model.onnx"
"""Where a source checkout (or an install from one) has it."""


def shipped_model() -> Path | None:
    """The shipped detector's ONNX file, or None when this installation does not have it."""
    return SHIPPED_MODEL if SHIPPED_MODEL.is_file() else None
