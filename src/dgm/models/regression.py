"""Bayesian polynomial regression with a non-conjugate prior and likelihood.

The inference-compilation example of the lecture: for data sets of points (t_i, y_i),

    w_j ~ Laplace(0, 2),  j = 0..degree,       y_i ~ StudentT(4, w_0 + w_1 t_i + w_2 t_i^2, 1).

Neither the prior nor the likelihood is conjugate, so the posterior over w has no closed
form; it is the test bed for learned proposals, importance sampling and MH. A batch of data
sets is the leading dimension of ``t`` and ``y`` (``[B, N]``); a ``mask`` (``[B, N]``, 1 =
present) allows a different number of points per data set.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.distributions import Independent, Laplace, StudentT

from ..distributions import MaskedIndependent
from ..ppl import sample


class PolynomialRegression(nn.Module):
    """p(w, y | t) for polynomials of ``degree`` (2: quadratic), Laplace prior, Student-t noise."""

    def __init__(
        self, degree: int = 2, prior_scale: float = 2.0, df: float = 4.0, noise: float = 1.0
    ) -> None:
        super().__init__()
        self.degree, self.prior_scale, self.df, self.noise = degree, prior_scale, df, noise

    def curve(self, w: Tensor, t: Tensor) -> Tensor:
        """sum_j w_j t^j for weights ``[..., B, degree+1]`` and inputs ``[B, N]`` -> ``[..., B, N]``."""
        powers = t.unsqueeze(-1) ** torch.arange(self.degree + 1, device=t.device)
        return (powers * w.unsqueeze(-2)).sum(-1)

    def forward(self, t: Tensor, y: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        if t.dim() != 2:
            raise ValueError(
                f"PolynomialRegression expects inputs t shaped [data sets, points], got {list(t.shape)}"
            )
        prior = Laplace(t.new_zeros(t.shape[0], self.degree + 1), self.prior_scale)
        w = sample("w", Independent(prior, 1))
        noise = StudentT(self.df, self.curve(w, t), self.noise)
        likelihood = Independent(noise, 1) if mask is None else MaskedIndependent(noise, mask)
        return sample("y", likelihood, obs=y)


def simulate(
    model: PolynomialRegression,
    num_datasets: int,
    num_points: int = 10,
    variable: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor, Tensor | None, Tensor]:
    """Data sets from the model: ``(t, y, mask, w)``.

    t is uniform on [-2, 2] (sorted); with ``variable=True`` each data set keeps between 3 and
    ``num_points`` points (the rest is padding, ``mask`` 0).
    """
    t = (torch.rand(num_datasets, num_points, generator=generator) * 4 - 2).sort(-1).values
    mask = None
    if variable:
        counts = torch.randint(3, num_points + 1, (num_datasets, 1), generator=generator)
        mask = (torch.arange(num_points) < counts).float()
    w = Laplace(0.0, model.prior_scale).sample((num_datasets, model.degree + 1))
    noise = torch.distributions.StudentT(model.df).sample((num_datasets, num_points))
    y = model.curve(w, t) + model.noise * noise
    return t, y, mask, w
