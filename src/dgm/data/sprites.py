"""dSprites, generated procedurally: 3 shapes x 6 scales x 40 orientations x 32 x 32 positions.

The factor grid of Matthey et al. (2017): shape (square, ellipse, heart), scale (6 values in
[0.5, 1]), orientation (40 values in [0, 2 pi]), x and y position (32 values each in [0, 1]),
737280 binary 64x64 images in all, indexed in that (row-major) order. Images are rendered from
implicit shape functions, so any subset can be generated on demand, at 64x64 (the published
size) or smaller (``size=32`` for CPU budgets: the same factor grid, rendered coarser);
generated sets are cached.

The orientation convention is the published file's: ``latents_values`` holds
``linspace(0, 2 pi, 40)``, both endpoints included, so orientations 0 and 39 render the same
image (google-deepmind/dsprites-dataset#7). We follow it, so that factor indices and values
mean what they mean in the file and in disentanglement_lib; a metric that predicts the
orientation cannot tell index 0 from 39 (nor, for the symmetric square and ellipse, many more).

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
_VERSION = 3  # bump when the renderer changes, to invalidate caches


def factor_values() -> dict[str, Tensor]:
    """The published grid of each factor's values."""
    return {
        "shape": torch.arange(3, dtype=torch.float32),
        "scale": torch.linspace(0.5, 1.0, 6),
        # as in the published file: 0 and 2 pi both included (the first and last are one image)
        "orientation": torch.linspace(0.0, 2 * math.pi, 40),
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


def _read_cache(path: Path, num_images: int, size: int = IMAGE_SIZE) -> Tensor | None:
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
    if bits.dtype != np.uint8 or bits.shape != (num_images, -(-(size**2) // 8)):
        return None
    return torch.from_numpy(np.unpackbits(bits, axis=1)[:, : size**2].astype(np.float32))


@dataclass
class DSprites:
    """Images ``[N, size**2]`` (float 0/1), factor indices ``[N, 5]`` and factor values ``[N, 5]``."""

    images: Tensor
    factors: Tensor
    values: Tensor
    index: Tensor


def dsprites(
    num_images: int | None = None,
    seed: int = 0,
    cache: bool = True,
    directory: str | os.PathLike[str] | None = None,
    size: int = IMAGE_SIZE,
) -> DSprites:
    """Generate dSprites (all 737280 images, or a random subset of ``num_images``).

    ``size`` is the image side (64: the published images; 32: the same grid, coarser).

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
    if size < 8:
        raise ValueError(f"size must be >= 8 pixels, got {size}")
    tag = "" if size == IMAGE_SIZE else f"-{size}px"
    key = hashlib.sha256(f"v{_VERSION}-{index.numel()}-{seed}{tag}".encode()).hexdigest()[:16]
    path = Path(directory) if directory is not None else cache_dir()
    path = path / f"dsprites-{key}.npz"
    images = _read_cache(path, index.numel(), size) if cache and path.is_file() else None
    if images is None:  # not cached, or the cache file is truncated or corrupt: regenerate
        parts = [
            render(factor_indices(chunk), size).reshape(len(chunk), -1)
            for chunk in index.split(8192)
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


class DSpritesFactors:
    """dSprites as a factor data set (``dgm.data.FactorData``): any factor combination, rendered.

    Args:
        size: the image side (64: published; 32: the cheaper rendering of the same grid).
    """

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES

    def __init__(self, size: int = IMAGE_SIZE) -> None:
        if size < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        self.size = size
        self.image_shape = (size, size)

    def render(self, factors: Tensor) -> Tensor:
        """Images ``[N, size**2]`` (float 0/1) for factor indices ``[N, 5]``."""
        if factors.dim() != 2 or factors.shape[1] != len(FACTOR_SIZES):
            raise ValueError(
                f"dSprites factors are [N, {len(FACTOR_SIZES)}] indices "
                f"({', '.join(FACTOR_NAMES)}), got {list(factors.shape)}"
            )
        high = torch.tensor(FACTOR_SIZES)
        if (factors < 0).any() or (factors >= high).any():
            raise ValueError(f"dSprites factor indices must lie in [0, {list(FACTOR_SIZES)})")
        return render(factors, self.size).reshape(len(factors), -1).float()

    def __repr__(self) -> str:
        return f"DSpritesFactors(size={self.size})"
