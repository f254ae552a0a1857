"""Priors over latent codes as modules: ``prior(batch_shape) -> Distribution`` over ``[D]``.

A prior is a module like a guide's layers, so its parameters train with the model:
the standard normal, a learnable mixture of Gaussians, and the VampPrior (a mixture of the
encoder's posteriors at learnable pseudo-inputs). The autoregressive prior (a MAF over z)
is ``dgm.flows.AutoregressivePrior``.

References:
    Tomczak & Welling, "VAE with a VampPrior", AISTATS 2018.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Size, Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, MixtureSameFamily, Normal

from ..registry import at_least
from .mixture import DiagonalGaussianMixture


class StandardNormalPrior(nn.Module):
    """p(z) = N(0, I) over ``[dim]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("loc", torch.zeros(dim))

    def forward(self, batch_shape: Size | tuple[int, ...] = ()) -> Distribution:
        loc = self.get_buffer("loc").expand(*batch_shape, -1)
        return Independent(Normal(loc, torch.ones_like(loc), validate_args=False), 1)


class MixtureOfGaussiansPrior(nn.Module):
    """p(z) = sum_k pi_k N(z; mu_k, diag(sigma_k^2)), all learnable."""

    def __init__(self, dim: int, components: int = 10, spread: float = 1.0) -> None:
        super().__init__()
        at_least("components", components, 1)
        self.logits = nn.Parameter(torch.zeros(components))
        self.means = nn.Parameter(spread * torch.randn(components, dim))
        self.log_scales = nn.Parameter(torch.zeros(components, dim))

    def forward(self, batch_shape: Size | tuple[int, ...] = ()) -> Distribution:
        return DiagonalGaussianMixture(self.logits, self.means, self.log_scales.exp(), batch_shape)


class VampPrior(nn.Module):
    """p(z) = (1/K) sum_k q(z | u_k) with learnable pseudo-inputs u_k (Tomczak & Welling 2018).

    The encoder belongs to the guide and is trained with it: the prior does not register it
    as a submodule (its parameters are not the model's, and are not saved twice), it only
    calls it. Gradients of log p(z) still reach the encoder, as in the paper.

    Args:
        encoder: maps inputs ``[K, data_size]`` to the posterior q(z | u) as a distribution
            with batch ``[K]`` and event ``[D]`` that can be ``expand``-ed (a diagonal or
            full-covariance Gaussian: e.g. ``guide.layers[0].base``).
        data_size: size of a (flattened) data point.
        num_pseudo: K (500 in the paper).
        init: optional ``[K, data_size]`` starting values (e.g. training images).
    """

    def __init__(
        self,
        encoder: Callable[[Tensor], Distribution],
        data_size: int,
        num_pseudo: int = 500,
        init: Tensor | None = None,
    ) -> None:
        super().__init__()
        at_least("num_pseudo", num_pseudo, 1)
        self.__dict__["encoder"] = encoder  # called, not owned (see above)
        self.encoder: Callable[[Tensor], Distribution]
        start = (
            init.clone().float()
            if init is not None
            else 0.5 + 0.05 * torch.randn(num_pseudo, data_size)
        )
        self.pseudo_inputs = nn.Parameter(start)

    def forward(self, batch_shape: Size | tuple[int, ...] = ()) -> Distribution:
        q = self.encoder(self.pseudo_inputs)
        k = self.pseudo_inputs.shape[0]
        if q.batch_shape != (k,) or len(q.event_shape) != 1:
            raise ValueError(
                f"VampPrior: the encoder must map [{k}, data_size] pseudo-inputs to a "
                f"distribution with batch [{k}] and one event dimension, got batch "
                f"{list(q.batch_shape)} and event {list(q.event_shape)}"
            )
        if isinstance(q, Independent) and isinstance(q.base_dist, Normal):
            base = q.base_dist
            return DiagonalGaussianMixture(base.loc.new_zeros(k), base.loc, base.scale, batch_shape)
        try:  # other families (a full-covariance encoder): a generic mixture
            comp = q.expand(Size((*batch_shape, k)))
        except NotImplementedError:
            raise TypeError(
                f"VampPrior: the encoder's {type(q).__name__} cannot be expanded to a mixture; "
                "give the Gaussian part of the posterior (e.g. guide.layers[0].base)"
            ) from None
        mix = Categorical(logits=self.pseudo_inputs.new_zeros(*batch_shape, k), validate_args=False)
        return MixtureSameFamily(mix, comp, validate_args=False)

    def extra_repr(self) -> str:
        return f"num_pseudo={self.pseudo_inputs.shape[0]}, log K={math.log(self.pseudo_inputs.shape[0]):.2f}"
