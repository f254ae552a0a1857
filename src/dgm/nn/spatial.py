"""The spatial transformer of Attend-Infer-Repeat: windows drawn onto and read from a canvas.

``z_where = (s, x, y)`` is the affine map [[s, 0, x], [0, s, y]] from canvas coordinates u in
[-1, 1]^2 (``align_corners=False``: -1 and 1 are the outer pixel edges) to window
coordinates s u + (x, y). Drawing a window samples it at those coordinates for every canvas
pixel (bilinear, zeros outside), so the window lands on the square of centre -(x, y) / s and
half-width 1 / s; reading a window applies the inverse map. Shapes broadcast over any leading
(particle, batch) dimensions.

Reference:
    Jaderberg, Simonyan, Zisserman & Kavukcuoglu, "Spatial Transformer Networks", NeurIPS 2015.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

WHERE = 3  # z_where = (scale, shift x, shift y)


def where_matrix(z_where: Tensor) -> Tensor:
    """``[..., 3] -> [..., 2, 3]``: (s, x, y) as the affine map [[s, 0, x], [0, s, y]]."""
    s, x, y = z_where.unbind(-1)
    zero = torch.zeros_like(s)
    return torch.stack([torch.stack([s, zero, x], -1), torch.stack([zero, s, y], -1)], -2)


def where_inverse(z_where: Tensor) -> Tensor:
    """The (s, x, y) of the inverse map: (1 / s, -x / s, -y / s)."""
    s = z_where[..., :1]
    return torch.cat([torch.ones_like(s), -z_where[..., 1:]], -1) / s


def _warp(source: Tensor, theta: Tensor, size: int) -> Tensor:
    """Sample ``source [..., h, w]`` on the ``size x size`` grid that ``theta [..., 2, 3]``
    maps into it (bilinear, zeros outside), broadcasting their leading dimensions."""
    lead = torch.broadcast_shapes(source.shape[:-2], theta.shape[:-2])
    src = source.expand(*lead, *source.shape[-2:]).reshape(-1, 1, *source.shape[-2:])
    th = theta.expand(*lead, 2, 3).reshape(-1, 2, 3)
    grid = F.affine_grid(th, [len(th), 1, size, size], align_corners=False)
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.reshape(*lead, size, size)


def window_to_image(windows: Tensor, z_where: Tensor, image_size: int) -> Tensor:
    """Draw ``windows [..., w, w]`` onto an ``image_size`` canvas at ``z_where [..., 3]``."""
    return _warp(windows, where_matrix(z_where), image_size)


def image_to_window(images: Tensor, z_where: Tensor, window_size: int) -> Tensor:
    """Read the ``window_size`` window at ``z_where`` out of ``images [..., H, H]`` (the
    inverse of ``window_to_image``)."""
    return _warp(images, where_matrix(where_inverse(z_where)), window_size)


def where_to_box(z_where: Tensor, image_size: int) -> Tensor:
    """The window's square on the canvas, ``[..., 4]`` = (x0, y0, x1, y1) in pixels (x the
    column, y the row; pixel i spans [i, i + 1])."""
    s, x, y = z_where.unbind(-1)
    half = 1 / s
    cx, cy = -x / s, -y / s

    def pixels(u: Tensor) -> Tensor:  # normalized [-1, 1] (pixel edges) -> pixel units
        return (u + 1) / 2 * image_size

    return torch.stack(
        [pixels(cx - half), pixels(cy - half), pixels(cx + half), pixels(cy + half)], -1
    )


__all__ = [
    "WHERE",
    "image_to_window",
    "where_inverse",
    "where_matrix",
    "where_to_box",
    "window_to_image",
]
