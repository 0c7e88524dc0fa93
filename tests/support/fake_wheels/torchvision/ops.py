"""torchvision.ops.nms: greedy non-maximum suppression over [x1, y1, x2, y2] boxes."""

from __future__ import annotations

import torch


def _iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    overlap = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - overlap
    return overlap / union if union else 0.0


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    rows = boxes.tolist()
    order = sorted(range(len(rows)), key=lambda index: -scores.tolist()[index])
    keep: list[int] = []
    for index in order:
        if all(_iou(rows[index], rows[kept]) <= iou_threshold for kept in keep):
            keep.append(index)
    return torch.tensor(keep)
