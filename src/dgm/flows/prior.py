"""The autoregressive prior: a learnable density over z from masked autoregressive flows."""

from __future__ import annotations

import torch
from torch import Size, nn
from torch.distributions import Distribution, Independent, Normal

from ..registry import at_least
from .autoregressive import MAF
from .bijection import Bijection, Compose, Permute
from .distribution import FlowDistribution


class AutoregressivePrior(nn.Module):
    """p(z) = N(u; 0, I) |det du/dz| with u = MAF^-1(z): ``prior(batch_shape) -> Distribution``.

    Scoring z (what the ELBO needs of a prior) is one pass per MAF step; drawing z from the
    prior (for pictures) takes D sequential passes. Steps alternate with coordinate
    reversals, so that every coordinate can depend on every other.

    References:
        Papamakarios, Pavlakou & Murray, "Masked Autoregressive Flow for Density
        Estimation", 2017; Chen et al., "Variational Lossy Autoencoder", 2017 (an
        autoregressive flow prior for a VAE).

    Args:
        dim: D.
        length: MAF steps.
        hidden: widths of each step's MADE (each >= D - 1).
    """

    def __init__(self, dim: int, length: int = 2, hidden: tuple[int, ...] = (100, 100)) -> None:
        super().__init__()
        at_least("length", length, 1)
        steps: list[Bijection] = []
        for i in range(length):
            if i > 0:
                steps.append(Permute(dim))
            steps.append(MAF(dim, hidden))
        self.flow = Compose(steps)
        self.register_buffer("loc", torch.zeros(dim))

    def forward(self, batch_shape: Size | tuple[int, ...] = ()) -> Distribution:
        loc = self.get_buffer("loc").expand(*batch_shape, -1)
        base = Independent(Normal(loc, torch.ones_like(loc), validate_args=False), 1)
        return FlowDistribution(base, self.flow)
