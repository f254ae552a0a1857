"""A conjugate Gaussian model with closed-form posterior and evidence, and a guide for it."""

import math

import torch
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

import dgm
from dgm.nn import MLP

NOISE = 0.5  # x_i | z ~ N(z, NOISE^2), i = 1..n; z ~ N(0, 1)


class GaussianMeanModel(nn.Module):
    def forward(self, x: torch.Tensor) -> None:
        z = dgm.sample("z", Normal(x.new_zeros(x.shape[:-1]), 1.0))
        dgm.sample(
            "x", Independent(Normal(z.unsqueeze(-1).expand(*z.shape, x.shape[-1]), NOISE), 1), obs=x
        )


class GaussianMeanGuide(nn.Module):
    """q(z | x) = N(mu(x), sigma(x)) from an MLP of the data set."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.net = MLP((n, 32, 2))

    def forward(self, x: torch.Tensor) -> None:
        loc, log_scale = self.net(x).unbind(-1)
        dgm.sample("z", Normal(loc, log_scale.exp()))


def posterior(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact p(z | x) mean and standard deviation, ``[B]`` each."""
    n = x.shape[-1]
    precision = 1.0 + n / NOISE**2
    return x.sum(-1) / NOISE**2 / precision, torch.full(x.shape[:-1], 1 / math.sqrt(precision))


def log_evidence(x: torch.Tensor) -> torch.Tensor:
    """Exact log p(x): x ~ N(0, NOISE^2 I + 1 1^T), ``[B]``."""
    n = x.shape[-1]
    cov = NOISE**2 * torch.eye(n) + torch.ones(n, n)
    return MultivariateNormal(torch.zeros(n), cov).log_prob(x)
