"""Importance sampling with any proposal: the prior, a learned guide, or a hand-written one."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..objectives import log_weights


@dataclass
class WeightedSamples:
    """K weighted samples of every latent site, per data set.

    Attributes:
        values: site name -> values ``[K, B, *event]``.
        log_weights: log w_k = log p(x, z_k) - log q(z_k | x), ``[K, B]``.
    """

    values: dict[str, Tensor]
    log_weights: Tensor

    @property
    def num_samples(self) -> int:
        return int(self.log_weights.shape[0])

    @property
    def weights(self) -> Tensor:
        """Self-normalized weights, ``[K, B]`` (each column sums to 1)."""
        return torch.softmax(self.log_weights, 0)

    @property
    def log_evidence(self) -> Tensor:
        """The unbiased estimate of p(x) in log space: log (1/K) sum_k w_k, ``[B]``."""
        return torch.logsumexp(self.log_weights, 0) - math.log(self.num_samples)

    @property
    def ess(self) -> Tensor:
        """Effective sample size (sum w)^2 / sum w^2, ``[B]``, between 1 and K."""
        lw = self.log_weights
        return torch.exp(2 * torch.logsumexp(lw, 0) - torch.logsumexp(2 * lw, 0))

    def mean(self, name: str) -> Tensor:
        """Self-normalized posterior mean of a site, ``[B, *event]``."""
        v = self.values[name]
        w = self.weights.reshape(self.weights.shape + (1,) * (v.dim() - 2))
        return (w * v).sum(0)

    def variance(self, name: str) -> Tensor:
        """Self-normalized posterior variance of a site, ``[B, *event]``."""
        v = self.values[name]
        w = self.weights.reshape(self.weights.shape + (1,) * (v.dim() - 2))
        m = (w * v).sum(0)
        return (w * (v - m) ** 2).sum(0)

    def quantile(self, name: str, q: float) -> Tensor:
        """Weighted quantile ``q`` of each coordinate of a site, ``[B, *event]``."""
        v = self.values[name]
        w = self.weights.reshape(self.weights.shape + (1,) * (v.dim() - 2)).expand_as(v)
        order = v.argsort(0)
        cdf = torch.gather(w, 0, order).cumsum(0)
        idx = (cdf < q).sum(0, keepdim=True).clamp(max=v.shape[0] - 1)
        return torch.gather(torch.gather(v, 0, order), 0, idx).squeeze(0)

    def resample(self, n: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``n`` unweighted draws per data set (multinomial resampling), ``[n, B, *event]``."""
        idx = torch.multinomial(self.weights.T, n, replacement=True, generator=generator).T
        out = {}
        for name, v in self.values.items():
            index = idx.reshape(idx.shape + (1,) * (v.dim() - 2)).expand(n, *v.shape[1:])
            out[name] = torch.gather(v, 0, index)
        return out


@torch.no_grad()
def importance_sampling(
    model: Callable[..., Any],
    guide: Callable[..., Any] | None,
    *args: Any,
    num_samples: int = 1000,
    **kwargs: Any,
) -> WeightedSamples:
    """Draw ``num_samples`` proposals per data set and weight them by p(x, z) / q(z | x).

    Args:
        model: the program whose posterior is wanted; observes its data with ``obs=``.
        guide: the proposal program; ``None`` proposes from the prior (the model's own latent
            sites), so that w = p(x | z).
        *args, **kwargs: the call (a batch of B data sets is a leading tensor dimension).
        num_samples: K.

    Returns:
        ``WeightedSamples`` with the values, log-weights, log-evidence, ESS and summaries.
    """
    proposal = model if guide is None else guide
    lw = log_weights(model, proposal, *args, num_particles=num_samples, **kwargs)
    values = {s.name: s.value for s in lw.guide_trace.latent if s.value is not None}
    return WeightedSamples(values, lw.log_w)
