"""Evaluation on the val split with Ultralytics' validator: mAP50, mAP50-95, AP per class."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.card import ClassMetrics, Metrics


def evaluate(model: Any, names: Sequence[str], args: Mapping[str, Any], work: Path) -> Metrics:
    """Validate `model` (an Ultralytics YOLO) on the val split of `args["data"]`."""
    result = model.val(
        data=args["data"],
        split="val",
        imgsz=args["imgsz"],
        batch=args["batch"],
        device=args["device"],
        workers=args.get("workers", 0),
        plots=False,
        verbose=False,
        project=str(work),
        name="val",
        exist_ok=True,
    )
    return metrics_from(result, names)


def metrics_from(result: Any, names: Sequence[str]) -> Metrics:
    """`Metrics` from Ultralytics' `DetMetrics`; classes absent from val get None APs."""
    box = result.box
    counts = getattr(result, "nt_per_class", None)
    instances = [int(n) for n in counts] if counts is not None else [0] * len(names)
    per_class = {
        name: ClassMetrics(ap50=None, ap50_95=None, instances=instances[i])
        for i, name in enumerate(names)
    }
    for row, index in enumerate(result.ap_class_index):
        name = names[int(index)]
        per_class[name] = ClassMetrics(
            ap50=_unit(box.ap50[row]), ap50_95=_unit(box.ap[row]), instances=instances[int(index)]
        )
    return Metrics(
        precision=_unit(box.mp),
        recall=_unit(box.mr),
        map50=_unit(box.map50),
        map50_95=_unit(box.map),
        per_class_ap=per_class,
    )


def _unit(value: Any) -> float:
    return round(min(max(float(value), 0.0), 1.0), 6)
