"""dSprites, generated procedurally: 3 shapes x 6 scales x 40 orientations x 32 x 32 positions.

The factor grid of Matthey et al. (2017): shape (square, ellipse, heart), scale (6 values in
[0.5, 1]), orientation (40 values in [0, 2 pi)), x and y position (32 values each in [0, 1]),
737280 binary 64x64 images in all, indexed in that (row-major) order. Images are rendered from
implicit shape functions, so any subset can be generated on demand; generated sets are cached.

References:
    Matthey, Higgins, Hassabis & Lerchner, "dSprites: Disentanglement testing Sprites
    dataset", 2017. Higgins et al., "beta-VAE", 2017.
"""

from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .files import cache_dir

SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
NUM_IMAGES = math.prod(FACTOR_SIZES)  # 737280
IMAGE_SIZE = 64
_VERSION = 2  # bump when the renderer changes, to invalidate caches


def factor_values() -> dict[str, Tensor]:
    """The published grid of each factor's values."""
    return {
        "shape": torch.arange(3, dtype=torch.float32),
        "scale": torch.linspace(0.5, 1.0, 6),
        "orientation": torch.arange(40, dtype=torch.float32) * (2 * math.pi / 40),
        "x": torch.linspace(0.0, 1.0, 32),
        "y": torch.linspace(0.0, 1.0, 32),
    }


def factor_indices(index: Tensor) -> Tensor:
    """Image index -> factor indices ``[N, 5]`` (shape, scale, orientation, x, y)."""
    out = torch.empty(*index.shape, 5, dtype=torch.long)
    rest = index.clone()
    for j in reversed(range(5)):
        out[..., j] = rest % FACTOR_SIZES[j]
        rest = rest // FACTOR_SIZES[j]
    return out


def render(factors: Tensor, size: int = IMAGE_SIZE) -> Tensor:
    """Binary images ``[N, size, size]`` for factor indices ``[N, 5]``.

    A shape's centre moves over the central 60% of the image (so every shape stays whole) as x and y go from 0 to 1
    (x to the right, y downwards); at scale 1 a square's half-side is 12% of the image.
    """
    values = factor_values()
    f = factors.long()
    scale = values["scale"][f[:, 1]].view(-1, 1, 1)
    theta = values["orientation"][f[:, 2]].view(-1, 1, 1)
    cx = (0.2 + 0.6 * values["x"][f[:, 3]]).view(-1, 1, 1)
    cy = (0.2 + 0.6 * values["y"][f[:, 4]]).view(-1, 1, 1)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    gx, gy = coords.view(1, 1, size), coords.view(1, size, 1)
    radius = 0.12 * scale
    dx, dy = gx - cx, gy - cy
    # rotate the pixel offsets into the shape's frame, in units of its radius
    u = (torch.cos(theta) * dx + torch.sin(theta) * dy) / radius
    v = (-torch.sin(theta) * dx + torch.cos(theta) * dy) / radius
    square = torch.maximum(u.abs(), v.abs()) <= 1.0
    ellipse = (u / 1.2) ** 2 + (v / 0.6) ** 2 <= 1.0
    # heart: (a^2 + b^2 - 1)^3 - a^2 b^3 <= 0, pointing down the shape's -v axis
    a, b = u * 1.1, -v * 1.1 + 0.1
    heart = (a**2 + b**2 - 1) ** 3 - a**2 * b**3 <= 0
    shape = f[:, 0].view(-1, 1, 1)
    return torch.where(shape == 0, square, torch.where(shape == 1, ellipse, heart))


def _read_cache(path: Path, num_images: int) -> Tensor | None:
    """The cached images, or ``None`` when the file is unreadable or not what it should be.

    The cache is ours to rebuild, so a truncated, corrupt or foreign file is no error: the
    caller renders the images again and replaces it. (The zip CRC of the member catches
    corrupted bytes; the shape and dtype check catches a file that is not a cache file.)
    """
    try:  # np.load gets an open file: given a path, it leaks it on a BadZipFile
        with open(path, "rb") as file, np.load(file, allow_pickle=False) as f:
            bits = f["bits"]
    except Exception:  # BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, ...
        return None
    if bits.dtype != np.uint8 or bits.shape != (num_images, IMAGE_SIZE**2 // 8):
        return None
    return torch.from_numpy(np.unpackbits(bits, axis=1)[:, : IMAGE_SIZE**2].astype(np.float32))


@dataclass
class DSprites:
    """Images ``[N, 4096]`` (float 0/1), factor indices ``[N, 5]`` and factor values ``[N, 5]``."""

    images: Tensor
    factors: Tensor
    values: Tensor
    index: Tensor


def dsprites(
    num_images: int | None = None,
    seed: int = 0,
    cache: bool = True,
    directory: str | os.PathLike[str] | None = None,
) -> DSprites:
    """Generate dSprites (all 737280 images, or a random subset of ``num_images``).

    The subset is drawn without replacement by ``seed``; the same arguments always give the
    same images. Results are cached as packed bits in ``directory`` (default: the dgm
    cache directory), so a second call is a file read; a cache file that is truncated,
    corrupt or not of these images is regenerated (and replaced, atomically).
    """
    if num_images is None or num_images >= NUM_IMAGES:
        index = torch.arange(NUM_IMAGES)
    else:
        if num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {num_images}")
        index = (
            torch.randperm(NUM_IMAGES, generator=torch.Generator().manual_seed(seed))[:num_images]
            .sort()
            .values
        )
    key = hashlib.sha256(f"v{_VERSION}-{index.numel()}-{seed}".encode()).hexdigest()[:16]
    path = Path(directory) if directory is not None else cache_dir()
    path = path / f"dsprites-{key}.npz"
    images = _read_cache(path, index.numel()) if cache and path.is_file() else None
    if images is None:  # not cached, or the cache file is truncated or corrupt: regenerate
        parts = [
            render(factor_indices(chunk)).reshape(len(chunk), -1) for chunk in index.split(8192)
        ]
        images = torch.cat(parts).float()
        if cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".npz")
            try:
                with os.fdopen(fd, "wb") as f:
                    bits = np.packbits(images.numpy().astype(np.uint8), axis=1)
                    np.savez_compressed(f, bits=bits)
                # atomic: concurrent writers (torchrun ranks) cannot corrupt it
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
    factors = factor_indices(index)
    grid = factor_values()
    values = torch.stack([grid[name][factors[:, j]] for j, name in enumerate(FACTOR_NAMES)], 1)
    return DSprites(images, factors, values, index)
