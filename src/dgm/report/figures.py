"""Pictures for a run: image grids and learning curves (matplotlib, no display needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle
from torch import Tensor

CURVE_COLUMNS = 4  # learning-curve panels per row
MIN_SIDE = 28  # image_grid draws an image at least this many of a 28x28 image's pixels wide


def image_grid(
    images: Tensor,
    image_shape: Sequence[int],
    path: Path,
    title: str = "",
    columns: int | None = None,
) -> Path:
    """Save flattened images ``[N, prod(image_shape)]`` (values in [0, 1]) as one grid picture.

    ``image_shape`` is ``(H, W)`` or ``(1, H, W)`` (grayscale, drawn dark on light) or
    ``(3, H, W)`` (colour, drawn as RGB: stacked MNIST's three digits in three colours).
    """
    images = images.detach().float().cpu().clamp(0, 1)
    n = images.shape[0]
    h, w = int(image_shape[-2]), int(image_shape[-1])
    channels = int(image_shape[0]) if len(image_shape) == 3 else 1
    if channels not in (1, 3):
        raise ValueError(
            f"image_shape must be (H, W), (1, H, W) or (3, H, W), got {tuple(image_shape)}"
        )
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = _tile(images.reshape(n, channels, h, w), cols)
    # small images (8x8 digits) are drawn as large as 28x28 ones: blocks of pixels, readable
    zoom = max(1.0, MIN_SIDE / max(h, w))
    fig = plt.figure(figsize=(cols * w * zoom / 60 + 0.5, rows * h * zoom / 60 + 0.7))
    if channels == 1:
        plt.imshow(canvas[0].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    else:
        plt.imshow(canvas.permute(1, 2, 0).numpy(), interpolation="nearest")
    plt.axis("off")
    if title:
        plt.title(title, fontsize=9)
    return _save(fig, path)


def _tile(images: Tensor, cols: int) -> Tensor:
    """Images ``[N, C, H, W]`` laid out ``cols`` to a row with 1-pixel grey borders:
    ``[C, rows * (H + 1) + 1, cols * (W + 1) + 1]``."""
    n, channels, h, w = images.shape
    rows = math.ceil(n / cols)
    canvas = images.new_ones(channels, rows * (h + 1) + 1, cols * (w + 1) + 1) * 0.5
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = (
            images[i]
        )
    return canvas


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight", dpi=100)
    plt.close(fig)
    return path


STEP_COLOURS = ("tab:red", "tab:green", "tab:blue", "tab:orange", "tab:purple", "tab:cyan")


def boxes_grid(
    images: Tensor,
    boxes: Tensor,
    present: Tensor,
    path: Path,
    title: str = "",
    columns: int | None = None,
) -> Path:
    """Save grayscale images ``[N, H, W]`` with boxes drawn on them, step t's in colour t.

    ``boxes`` is ``[N, T, 4]`` (x0, y0, x1, y1 in pixels, x the column; pixel i spans
    [i, i + 1]) and ``present`` ``[N, T]``: only the boxes where it is 1 are drawn
    (Attend-Infer-Repeat's windows, one colour per inference step).
    """
    images = images.detach().float().cpu().clamp(0, 1)
    if images.dim() != 3 or boxes.shape[:1] != images.shape[:1] or boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes_grid needs images [N, H, W] and boxes [N, T, 4]; got {list(images.shape)} "
            f"and {list(boxes.shape)}"
        )
    n, h, w = images.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = _tile(images[:, None], cols)[0]
    fig = plt.figure(figsize=(cols * w / 25 + 0.5, rows * h / 25 + 0.7))
    ax = fig.gca()
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    boxes, present = boxes.detach().float().cpu(), present.detach().cpu()
    for i in range(n):
        r, c = divmod(i, cols)
        ox, oy = 1 + c * (w + 1) - 0.5, 1 + r * (h + 1) - 0.5  # pixel j spans [j - .5, j + .5]
        for t in range(boxes.shape[1]):
            if present[i, t] < 0.5:
                continue
            x0, y0, x1, y1 = boxes[i, t].tolist()
            colour = STEP_COLOURS[t % len(STEP_COLOURS)]
            ax.add_patch(
                Rectangle((ox + x0, oy + y0), x1 - x0, y1 - y0, fill=False, lw=1, ec=colour)
            )
    ax.set_xlim(-0.5, canvas.shape[1] - 0.5)
    ax.set_ylim(canvas.shape[0] - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def heatmap(
    matrix: Any,
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    path: Path,
    title: str = "",
) -> Path:
    """Save a matrix (values in [0, 1], e.g. normalized mutual information) as an annotated
    heatmap: one row per ``row_labels`` entry, one column per ``column_labels`` entry."""
    values = np.asarray(matrix, dtype=float)
    rows, cols = values.shape
    if (rows, cols) != (len(row_labels), len(column_labels)):
        raise ValueError(
            f"a {rows}x{cols} matrix needs {rows} row and {cols} column labels, got "
            f"{len(row_labels)} and {len(column_labels)}"
        )
    fig, ax = plt.subplots(figsize=(1.1 * cols + 1.8, 0.42 * rows + 1.2))
    image = ax.imshow(values, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(cols), list(column_labels), fontsize=8)
    ax.set_yticks(range(rows), list(row_labels), fontsize=8)
    for r in range(rows):
        for c in range(cols):
            color = "black" if values[r, c] > 0.6 else "white"
            ax.text(c, r, f"{values[r, c]:.2f}", ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(image, ax=ax, fraction=0.05)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def learning_curves(records: list[dict[str, Any]], path: Path) -> Path | None:
    """Plot every logged metric against the step, one panel per metric, in rows of at most
    ``CURVE_COLUMNS`` panels (readable on a page however many metrics a run logs)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for r in records:
        for k, v in r.items():
            if k in ("step", "seconds", "examples_per_s") or not isinstance(v, (int, float)):
                continue
            xs, ys = series.setdefault(k, ([], []))
            xs.append(r["step"])
            ys.append(v)
    if not series:
        return None
    cols = min(CURVE_COLUMNS, len(series))
    rows = math.ceil(len(series) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (name, (xs, ys)) in zip(axes.flat, sorted(series.items()), strict=False):
        ax.plot(xs, ys, lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(series) :]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
