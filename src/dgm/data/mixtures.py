"""The two-dimensional Gaussian mixtures of GAN mode-collapse experiments, as PacGAN draws them.

``MIXTURES`` maps a name to a ``Mixture``: its mode centres ``[M, 2]`` and the standard
deviation of every mode (the same in both coordinates, no correlation). A mode-coverage
metric reads both from this table; ``mixture(name, n, seed)`` draws ``n`` points, each from a
mode chosen uniformly at random, from one seeded ``numpy.random.Generator`` (as ``toy2d``
does), so that a data set is a function of its seed.

- ``ring8``: 8 modes evenly on the unit circle, angles ``2 pi k / 8`` for ``k = 0..7`` (the
  first at ``(1, 0)``), standard deviation 0.01.
- ``grid25``: 25 modes at ``{-4, -2, 0, 2, 4}^2`` (listed x-major), standard deviation 0.05.

These follow PacGAN's configurations ``synthetic_data_experiments/2DRing_GAN&PacGAN/config.py``
(``MEANS = [(cos(2 pi k / 8), sin(2 pi k / 8)) for k in range(8)]``, variance ``0.01 ** 2 * I``)
and ``synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py`` (``itertools.product(range(-4,
5, 2), repeat=2)``, variance ``0.05 ** 2 * I``) in github.com/fjxmlzn/PacGAN, with uniform
mode priors (``x_mode_priors=None``) and 100000 training points (``num_sample``), as ALI's
``GaussianMixtureDistribution`` samples them (a mode per point, then a Gaussian around it).

A caution about other copies of the ring: the unrolled-GAN demo (github.com/poolio/unrolled_gan,
``Unrolled GAN demo.ipynb``, ``sample_mog``) and the many generators copied from it place the
modes at ``np.linspace(0, 2 * np.pi, n_mixture)``, whose endpoint (on by default) repeats the
first angle: their "8 Gaussians" are 7 distinct modes, one of them twice as likely. PacGAN's
configuration, and this module, have 8 distinct, equally likely modes.

References:
    Lin, Khetan, Fanti & Oh, "PacGAN: The power of two samples in generative adversarial
    networks", NeurIPS 2018 (Section 4.1, Table 1).
    Metz, Poole, Pfau & Sohl-Dickstein, "Unrolled Generative Adversarial Networks", ICLR 2017.
    Srivastava, Valkov, Russell, Gutmann & Sutton, "VEEGAN: Reducing Mode Collapse in GANs
    using Implicit Variational Learning", NeurIPS 2017.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Mixture:
    """An equally weighted mixture of isotropic 2-D Gaussians with one standard deviation.

    Attributes:
        means: the mode centres as plain numbers, ``((x, y), ...)`` (immutable; ``centers``
            is the same as a tensor).
        std: the standard deviation of each coordinate of each mode.
        summary: one line about the mixture and where it comes from.
    """

    means: tuple[tuple[float, float], ...]
    std: float
    summary: str

    @property
    def centers(self) -> Tensor:
        """The mode centres ``[M, 2]`` (float32, like the points; a fresh tensor each call)."""
        return torch.tensor(self.means, dtype=torch.float32)

    @property
    def num_modes(self) -> int:
        """``M``, the number of modes."""
        return len(self.means)


def _ring(modes: int, radius: float) -> tuple[tuple[float, float], ...]:
    # k / modes for k < modes: no repeated endpoint (see the module's docstring)
    angles = [2 * math.pi * k / modes for k in range(modes)]
    return tuple((radius * math.cos(a), radius * math.sin(a)) for a in angles)


def _grid(side: int, spacing: float) -> tuple[tuple[float, float], ...]:
    axis = [spacing * (i - (side - 1) / 2) for i in range(side)]
    return tuple((x, y) for x, y in itertools.product(axis, axis))


MIXTURES: dict[str, Mixture] = {
    "ring8": Mixture(
        _ring(8, 1.0), 0.01, "8 Gaussians on the unit circle, std 0.01 (PacGAN's 2D-ring)"
    ),
    "grid25": Mixture(
        _grid(5, 2.0), 0.05, "25 Gaussians at {-4, -2, 0, 2, 4}^2, std 0.05 (PacGAN's 2D-grid)"
    ),
}


def mixture(name: str, n: int, seed: int = 0) -> Tensor:
    """``n`` points ``[n, 2]`` (float32) of the mixture ``name`` of ``MIXTURES``.

    Each point's mode is drawn uniformly, then the point from that mode's Gaussian; the
    points are a function of ``seed`` alone.

    Raises:
        ValueError: ``name`` is not in ``MIXTURES``, or ``n < 1``.
    """
    if name not in MIXTURES:
        raise ValueError(f"unknown mixture {name!r}; choose one of {', '.join(MIXTURES)}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    mix = MIXTURES[name]
    g = np.random.default_rng(seed)
    modes = g.integers(0, mix.num_modes, n)
    x = np.asarray(mix.means)[modes] + mix.std * g.standard_normal((n, 2))
    return torch.from_numpy(x.astype(np.float32))


__all__ = ["MIXTURES", "Mixture", "mixture"]
