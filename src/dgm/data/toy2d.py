"""The two-dimensional toy densities of the flow literature, as FFJORD generates them.

Eight densities (``TOY_DENSITIES``), each a function ``(n, generator) -> [n, 2]`` with the
shapes, scales and noise levels of FFJORD's ``lib/toy_data.py`` (Grathwohl et al. 2019), drawn
from one seeded ``numpy.random.Generator`` so that a data set is a function of its seed.
The three densities FFJORD takes from scikit-learn (swiss roll, circles, moons) are written
out here with scikit-learn's formulas.

References:
    Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud, "FFJORD: Free-form Continuous
    Dynamics for Scalable Reversible Generative Models", 2019.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

Generator = np.random.Generator


def _swissroll(n: int, g: Generator) -> np.ndarray:
    t = 1.5 * math.pi * (1 + 2 * g.random(n))  # scikit-learn's make_swiss_roll, noise 1
    x = np.stack([t * np.cos(t), 21 * g.random(n), t * np.sin(t)], 1) + g.standard_normal((n, 3))
    return x[:, [0, 2]] / 5


def _circles(n: int, g: Generator) -> np.ndarray:
    outer, inner = n - n // 2, n // 2  # make_circles(factor=0.5, noise=0.08), times 3
    a = np.linspace(0, 2 * math.pi, outer, endpoint=False)
    b = np.linspace(0, 2 * math.pi, inner, endpoint=False)
    x = np.concatenate(
        [np.stack([np.cos(a), np.sin(a)], 1), 0.5 * np.stack([np.cos(b), np.sin(b)], 1)]
    )
    x = x + 0.08 * g.standard_normal(x.shape)
    return 3 * x[g.permutation(n)]


def _rings(n: int, g: Generator) -> np.ndarray:
    sizes = [n - 3 * (n // 4), n // 4, n // 4, n // 4]
    parts = []
    for radius, size in zip((0.25, 0.5, 0.75, 1.0), sizes, strict=True):
        a = np.linspace(0, 2 * math.pi, size, endpoint=False)
        parts.append(radius * np.stack([np.cos(a), np.sin(a)], 1))
    x = 3 * np.concatenate(parts)[g.permutation(n)]
    return x + 0.08 * g.standard_normal(x.shape)


def _moons(n: int, g: Generator) -> np.ndarray:
    outer, inner = n - n // 2, n // 2  # make_moons(noise=0.1), times 2, shifted
    a, b = np.linspace(0, math.pi, outer), np.linspace(0, math.pi, inner)
    x = np.concatenate(
        [np.stack([np.cos(a), np.sin(a)], 1), np.stack([1 - np.cos(b), 1 - np.sin(b) - 0.5], 1)]
    )
    x = x[g.permutation(n)] + 0.1 * g.standard_normal((n, 2))
    return 2 * x + np.array([-1.0, -0.2])


def _eight_gaussians(n: int, g: Generator) -> np.ndarray:
    s = 1 / math.sqrt(2)
    centers = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (s, s), (s, -s), (-s, s), (-s, -s)])
    x = 0.5 * g.standard_normal((n, 2)) + centers[g.integers(0, 8, n)]
    return x / 1.414


def _pinwheel(n: int, g: Generator) -> np.ndarray:
    classes, per_class = 5, n // 5
    m = classes * per_class
    features = g.standard_normal((m, 2)) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(classes), per_class)
    angles = np.linspace(0, 2 * math.pi, classes, endpoint=False)[labels] + 0.25 * np.exp(
        features[:, 0]
    )
    rotations = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)], 1)
    x = 2 * np.einsum("ti,tij->tj", features, rotations.reshape(-1, 2, 2))
    if m < n:  # FFJORD drops the remainder; keep n points by drawing the rest again
        x = np.concatenate([x, _pinwheel(max(n - m, 5), g)[: n - m]])
    return x[g.permutation(n)]


def _two_spirals(n: int, g: Generator) -> np.ndarray:
    half = n // 2
    t = np.sqrt(g.random((half, 1))) * 540 * (2 * math.pi) / 360
    d1 = np.hstack(
        [-np.cos(t) * t + g.random((half, 1)) * 0.5, np.sin(t) * t + g.random((half, 1)) * 0.5]
    )
    x = np.vstack([d1, -d1]) / 3
    if 2 * half < n:
        x = np.vstack([x, x[:1]])
    return x[g.permutation(n)] + 0.1 * g.standard_normal((n, 2))


def _checkerboard(n: int, g: Generator) -> np.ndarray:
    x1 = g.random(n) * 4 - 2
    x2 = g.random(n) - g.integers(0, 2, n) * 2 + np.floor(x1) % 2
    return 2 * np.stack([x1, x2], 1)


TOY_DENSITIES: dict[str, Callable[[int, Generator], np.ndarray]] = {
    "swissroll": _swissroll,
    "circles": _circles,
    "rings": _rings,
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "pinwheel": _pinwheel,
    "2spirals": _two_spirals,
    "checkerboard": _checkerboard,
}


def toy2d(name: str, n: int, seed: int = 0) -> Tensor:
    """``n`` points ``[n, 2]`` (float32) of the toy density ``name``, a function of ``seed``."""
    if name not in TOY_DENSITIES:
        raise ValueError(f"unknown toy density {name!r}; choose one of {', '.join(TOY_DENSITIES)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    x = TOY_DENSITIES[name](n, np.random.default_rng(seed))
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


__all__ = ["TOY_DENSITIES", "toy2d"]
