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
    scoring N points against C components is one [N, 2D] x [2D, C] product (``addmm`` of
    [z^2, z] with [-1/(2 sigma_c^2), mu_c / sigma_c^2] plus a per-component constant) and
    never builds an [N, C, D] tensor (a VampPrior has C = 500 components: a K=5000
    log-likelihood evaluation would otherwise move terabytes).

    The expansion cancels terms of size D |z|^2 / sigma^2 down to the quadratic form itself
    (about D near a component), so it is computed in float64 whatever the values' dtype, after
    subtracting the mean of the component means from the values and the means (which shrinks
    the terms when the components sit away from the origin). In float32 the cancellation cost
    0.01-0.07 nats at D = 50, C = 500 and sigma = 0.05-0.02 (0.1-0.7 with means around 3);
    in float64 the error is that of scoring directly (about 1e-5 nats). On the CPU the float64
    product is no slower than the float32 code it replaced (the float32 work was mostly the
    passes over [N, C]); on GPUs with slow float64 it costs more, but far less than
    ``MixtureSameFamily``'s [N, C, D] tensor. Results have the values' (promoted) dtype.

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

    def _scores(self, value: Tensor, log_weights: Tensor | None) -> Tensor:
        """log N(z; mu_c, sigma_c) (+ ``log_weights``) for every component, in float64."""
        acc = torch.float64
        loc, scale = self.loc.to(acc), self.scale.to(acc)
        reference = loc.mean(0)  # centring shrinks the expanded terms; the result is unchanged
        z, mu = value.to(acc) - reference, loc - reference
        precision = scale.pow(-2)
        d = loc.shape[-1]
        bias = -0.5 * (mu * mu * precision).sum(-1) - scale.log().sum(-1)
        bias = bias - 0.5 * d * math.log(2 * math.pi)
        if log_weights is not None:
            bias = bias + log_weights.to(acc)
        weight = torch.cat([-0.5 * precision, mu * precision], -1)  # [C, 2D]
        features = torch.cat([z * z, z], -1)  # [..., 2D]
        out = torch.addmm(bias, features.reshape(-1, 2 * d), weight.T)
        return out.reshape(*features.shape[:-1], loc.shape[0])

    def _dtype(self, value: Tensor) -> torch.dtype:
        return torch.promote_types(value.dtype, self.loc.dtype)

    def component_log_prob(self, value: Tensor) -> Tensor:
        """log N(z; mu_c, sigma_c) for every component: ``[..., D] -> [..., C]``."""
        return self._scores(value, None).to(self._dtype(value))

    def log_prob(self, value: Tensor) -> Tensor:
        scores = self._scores(value, self.log_weights)
        lp = torch.logsumexp(scores, -1).to(self._dtype(value))
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
