"""Greedy non-maximum suppression in vectorised numpy, with the semantics of
`torchvision.ops.nms` (which Ultralytics' predictor calls): highest score first, a box is
dropped when its IoU with a kept box is strictly above the threshold.

    >>> boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=np.float32)
    >>> scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    >>> nms(boxes, scores, 0.5).tolist()
    [0, 2]
    >>> batched_nms(boxes, scores, np.array([0, 1, 0]), 0.5).tolist()
    [0, 1, 2]
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Indices = npt.NDArray[np.intp]

# Keeps IoU finite for degenerate (zero-area) boxes; their IoU is then 0, as in torchvision.
_TINY = np.finfo(np.float64).tiny


def box_iou(box: npt.ArrayLike, boxes: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """IoU of one `(x1, y1, x2, y2)` box with each row of `boxes` (N x 4).

    >>> box_iou([0, 0, 2, 2], [[1, 0, 3, 2], [5, 5, 6, 6]]).round(3).tolist()
    [0.333, 0.0]
    """
    one = np.asarray(box, dtype=np.float64)
    many = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    areas = (many[:, 2] - many[:, 0]) * (many[:, 3] - many[:, 1])
    return _iou_with(one, (one[2] - one[0]) * (one[3] - one[1]), many, areas)


def nms(
    boxes: npt.ArrayLike, scores: npt.ArrayLike, iou_threshold: float, limit: int | None = None
) -> Indices:
    """Indices of the boxes kept by greedy NMS, by descending score; at most `limit` of them.

    Stopping at `limit` gives the same result as slicing the full answer, only sooner.
    """
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if xyxy.shape[0] <= 1:  # the common frame: nothing to suppress
        return np.arange(xyxy.shape[0] if limit is None else min(limit, xyxy.shape[0]))
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    areas = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    keep: list[int] = []
    while order.size and (limit is None or len(keep) < limit):
        best, rest = order[0], order[1:]
        keep.append(int(best))
        iou = _iou_with(xyxy[best], areas[best], xyxy[rest], areas[rest])
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.intp)


def batched_nms(
    boxes: npt.ArrayLike,
    scores: npt.ArrayLike,
    class_ids: npt.ArrayLike,
    iou_threshold: float,
    *,
    agnostic: bool = False,
    limit: int | None = None,
) -> Indices:
    """NMS within each class (or across classes when `agnostic`), by descending score.

    Each class is moved to its own region of the plane, as Ultralytics and torchvision
    do, so one NMS pass never compares boxes of different classes. The offset is the
    boxes' full extent plus one, which also holds for negative coordinates.
    """
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if agnostic or xyxy.shape[0] <= 1:
        return nms(xyxy, scores, iou_threshold, limit)
    extent = float(xyxy.max() - xyxy.min()) + 1.0
    offsets = np.asarray(class_ids, dtype=np.float64).reshape(-1, 1) * extent
    return nms(xyxy + offsets, scores, iou_threshold, limit)


def _iou_with(
    box: npt.NDArray[np.float64],
    area: np.float64,
    boxes: npt.NDArray[np.float64],
    areas: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    width = np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])
    height = np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])
    inter = np.maximum(width, 0.0) * np.maximum(height, 0.0)
    union = np.maximum(area + areas - inter, _TINY)
    iou: npt.NDArray[np.float64] = inter / union
    return iou
