"""Counting and locating objects: count accuracy with its confusion matrix, and box overlap.

What Attend-Infer-Repeat is judged by (Eslami et al. 2016): the share of images whose number
of objects the inference network gets right, and how well its windows cover the true objects
(intersection over union of the boxes, matched per image).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Intersection over union of boxes ``[..., 4]`` (x0, y0, x1, y1), broadcasting."""
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp(min=0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp(min=0)
    inter = w * h

    def area(c: Tensor) -> Tensor:
        return (c[..., 2] - c[..., 0]).clamp(min=0) * (c[..., 3] - c[..., 1]).clamp(min=0)

    return inter / (area(a) + area(b) - inter).clamp(min=1e-12)


@dataclass
class CountReport:
    """Count accuracy and what the errors are.

    Attributes:
        accuracy: the share of images with the right count.
        confusion: ``[max_true + 1, max_pred + 1]`` counts of (true count, inferred count).
        box_iou: the mean IoU of matched boxes over the correctly counted images with at least
            one object (NaN when there are none, or no boxes were given).
        centre_error: the mean distance in pixels between the centres of the matched boxes
            (NaN as ``box_iou``): how well the objects are located, whatever the boxes'
            margins (AIR's square windows against the digits' frames).
    """

    accuracy: float
    confusion: Tensor
    box_iou: float
    centre_error: float = float("nan")


def count_report(
    counts: Tensor,
    true_counts: Tensor,
    boxes: Tensor | None = None,
    true_boxes: Tensor | None = None,
    max_count: int | None = None,
) -> CountReport:
    """Compare inferred with true counts (``[N]``), and matched boxes where the count is right.

    Args:
        counts: the inferred number of objects per image.
        true_counts: the true number.
        boxes: ``[N, T, 4]`` inferred boxes, step t's in row t (the first ``counts`` rows
            count).
        true_boxes: ``[N, M, 4]`` true boxes (the first ``true_counts`` rows count).
        max_count: the largest inferred count the confusion matrix has a column for
            (default: the largest seen).

    The boxes of an image are matched by the permutation with the largest total IoU (images
    hold a handful of objects, so every permutation is tried).
    """
    counts, true_counts = counts.long().cpu(), true_counts.long().cpu()
    if counts.shape != true_counts.shape or counts.dim() != 1:
        raise ValueError(
            f"counts and true_counts must both be [N]; got {list(counts.shape)} and "
            f"{list(true_counts.shape)}"
        )
    rows = int(true_counts.max()) + 1 if len(true_counts) else 1
    cols = max(int(counts.max()) + 1 if len(counts) else 1, (max_count or 0) + 1)
    confusion = torch.zeros(rows, cols, dtype=torch.long)
    confusion.index_put_((true_counts, counts), torch.ones_like(counts), accumulate=True)
    right = counts == true_counts
    accuracy = right.double().mean().item() if len(counts) else float("nan")
    iou = centre = float("nan")
    if boxes is not None and true_boxes is not None:
        scores, distances = [], []
        for i in torch.nonzero(right & (true_counts > 0)).flatten().tolist():
            n = int(true_counts[i])
            pred, true = boxes[i, :n].cpu().double(), true_boxes[i, :n].cpu().double()
            pairs = box_iou(pred[:, None], true[None])  # [n, n]
            gaps = (_centres(pred)[:, None] - _centres(true)[None]).norm(dim=-1)
            best = max(
                itertools.permutations(range(n)),
                key=lambda perm: sum(pairs[a, b].item() for a, b in enumerate(perm)),
            )
            scores.append(sum(pairs[a, b].item() for a, b in enumerate(best)) / n)
            distances.append(sum(gaps[a, b].item() for a, b in enumerate(best)) / n)
        if scores:
            iou, centre = sum(scores) / len(scores), sum(distances) / len(distances)
    return CountReport(accuracy, confusion, iou, centre)


def _centres(b: Tensor) -> Tensor:
    return torch.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2], -1)


__all__ = ["CountReport", "box_iou", "count_report"]
