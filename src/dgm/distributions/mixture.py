"""A mixture of diagonal Gaussians shared by every data point, scored with matrix products."""

from __future__ import annotations

import math

import torch
from torch import Size, Tensor
from torch.distributions import Categorical, Distribution, constraints


class DiagonalGaussianMixture(Distribution):
    """p(z) = sum_c pi_c N(z; mu_c, diag(sigma_c^2)), the same components for every batch entry.

    ``log_prob`` expands the squares, sum_d (z_d - mu_cd)^2 / sigma_cd^2 =
    z^2 . (1/sigma_c^2) - 2 z . (mu_c / sigma_c^2) + sum_d mu_cd^2 / sigma_cd^2, so that
    scoring N points against C components costs two [N, D] x [D, C] products and never
    builds an [N, C, D] tensor (a VampPrior has C = 500 components: a K=5000 log-likelihood
    evaluation would otherwise move terabytes).

    Args:
        logits: ``[C]`` unnormalized log mixture weights.
        loc, scale: ``[C, D]``.
        batch_shape: the batch the distribution reports (values broadcast against it).
    """

    arg_constraints: dict[str, constraints.Constraint] = {}  # noqa: RUF012
    support = constraints.real_vector

    def __init__(
        self, logits: Tensor, loc: Tensor, scale: Tensor, batch_shape: Size | tuple[int, ...] = ()
    ) -> None:
        if loc.dim() != 2 or scale.shape != loc.shape or logits.shape != loc.shape[:1]:
            raise ValueError(
                "DiagonalGaussianMixture: logits [C], loc and scale [C, D] expected, got "
                f"{list(logits.shape)}, {list(loc.shape)}, {list(scale.shape)}"
            )
        self.logits, self.loc, self.scale = logits, loc, scale
        super().__init__(Size(batch_shape), loc.shape[-1:], validate_args=False)

    @property
    def log_weights(self) -> Tensor:
        return torch.log_softmax(self.logits, -1)

    def component_log_prob(self, value: Tensor) -> Tensor:
        """log N(z; mu_c, sigma_c) for every component: ``[..., D] -> [..., C]``."""
        precision = self.scale.pow(-2)
        quad = (
            (value * value) @ precision.T
            - 2 * value @ (self.loc * precision).T
            + (self.loc * self.loc * precision).sum(-1)
        )
        norm = self.scale.log().sum(-1) + 0.5 * self.loc.shape[-1] * math.log(2 * math.pi)
        return -0.5 * quad.clamp(min=0) - norm

    def log_prob(self, value: Tensor) -> Tensor:
        lp = torch.logsumexp(self.component_log_prob(value) + self.log_weights, -1)
        return lp.expand(torch.broadcast_shapes(lp.shape, self.batch_shape))

    def sample(self, sample_shape: Size | list[int] | tuple[int, ...] = ()) -> Tensor:
        with torch.no_grad():
            shape = Size(sample_shape) + self.batch_shape
            c = Categorical(logits=self.logits, validate_args=False).sample(shape)
            return self.loc[c] + self.scale[c] * torch.randn_like(self.loc[c])

    @property
    def mean(self) -> Tensor:
        m = (self.log_weights.exp().unsqueeze(-1) * self.loc).sum(0)
        return m.expand(*self.batch_shape, -1)

    def expand(
        self, batch_shape: Size | list[int] | tuple[int, ...], _instance: object = None
    ) -> Distribution:
        return DiagonalGaussianMixture(self.logits, self.loc, self.scale, Size(batch_shape))
