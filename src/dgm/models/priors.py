"""The priors a VAE can put over its top latent layer, by name.

The classes live in ``dgm.distributions`` (standard normal, mixture of Gaussians, VampPrior)
and ``dgm.flows`` (the autoregressive MAF prior); this table is the one place their names
are written. Every entry is built as ``build(dim, data_size=..., encoder=...,
components=..., flow_length=..., flow_hidden=...)`` and takes what it needs. The capability
``single_layer`` marks priors that mix the encoder's posteriors at pseudo-inputs: they need
the encoder of the layer they sit on, so a VAE with one stochastic layer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from ..flows import AutoregressivePrior
from ..registry import Registry

Encoder = Callable[[Tensor], Distribution]


def _normal(dim: int, **_: Any) -> nn.Module:
    return StandardNormalPrior(dim)


def _mog(dim: int, *, components: int | None = None, **_: Any) -> nn.Module:
    return MixtureOfGaussiansPrior(dim, 10 if components is None else components)


def _vamp(
    dim: int,
    *,
    data_size: int,
    encoder: Encoder,
    components: int | None = None,
    **_: Any,
) -> nn.Module:
    return VampPrior(encoder, data_size, 500 if components is None else components)


def _maf(
    dim: int, *, flow_length: int = 2, flow_hidden: Sequence[int] = (100, 100), **_: Any
) -> nn.Module:
    return AutoregressivePrior(dim, flow_length, tuple(flow_hidden))


PRIORS: Registry[nn.Module] = Registry("prior")
PRIORS.add("normal", _normal, "standard normal N(0, I)", single_layer=False)
PRIORS.add(
    "mog", _mog, "learnable mixture of diagonal Gaussians (10 components)", single_layer=False
)
PRIORS.add(
    "vamp", _vamp, "VampPrior: q(z | u) mixed at learnable pseudo-inputs (500)", single_layer=True
)
PRIORS.add(
    "maf", _maf, "autoregressive prior: masked autoregressive flow over z", single_layer=False
)

__all__ = ["PRIORS"]
