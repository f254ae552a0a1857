"""The priors a VAE can put over its top latent layer, by name.

The classes live in ``dgm.distributions`` (standard normal, mixture of Gaussians, VampPrior)
and ``dgm.flows`` (the autoregressive MAF prior); this table is the one place their names
are written. Every entry has its options and is built as ``PRIORS.create(options, dim,
data_size, encoder)`` (``encoder``: the guide's Gaussian part, for the VampPrior). The capability
``single_layer`` marks priors that mix the encoder's posteriors at pseudo-inputs: they need
the encoder of the layer they sit on, so a VAE with one stochastic layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn
from torch.distributions import Distribution

from ..distributions import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior
from ..flows import AutoregressivePrior
from ..options import Options, at_least
from ..registry import Registry

Encoder = Callable[[Tensor], Distribution]


@dataclass(kw_only=True)
class MixtureOptions(Options):
    """A mixture's number of components (mog: 10 Gaussians; vamp: 500 pseudo-inputs)."""

    components: int = at_least(1, 10)


@dataclass(kw_only=True)
class VampOptions(MixtureOptions):
    """The VampPrior's pseudo-inputs (Tomczak & Welling: 500)."""

    components: int = at_least(1, 500)


@dataclass(kw_only=True)
class MAFPriorOptions(Options):
    """The autoregressive prior's MAF steps and the widths of each step's MADE."""

    flow_length: int = at_least(1, 2)
    flow_hidden: list[int] = at_least(1, factory=lambda: [100, 100])


def _normal(o: Options, dim: int, data_size: int, encoder: Encoder | None) -> nn.Module:
    return StandardNormalPrior(dim)


def _mog(o: MixtureOptions, dim: int, data_size: int, encoder: Encoder | None) -> nn.Module:
    return MixtureOfGaussiansPrior(dim, o.components)


def _vamp(o: VampOptions, dim: int, data_size: int, encoder: Encoder | None) -> nn.Module:
    if encoder is None:
        raise ValueError("the VampPrior mixes q(z | u): it needs the guide's encoder")
    return VampPrior(encoder, data_size, o.components)


def _maf(o: MAFPriorOptions, dim: int, data_size: int, encoder: Encoder | None) -> nn.Module:
    return AutoregressivePrior(dim, o.flow_length, tuple(o.flow_hidden))


PRIORS: Registry[nn.Module] = Registry("prior")
PRIORS.add("normal", _normal, "standard normal N(0, I)", options=Options, single_layer=False)
PRIORS.add(
    "mog",
    _mog,
    "learnable mixture of diagonal Gaussians (10 components)",
    options=MixtureOptions,
    single_layer=False,
)
PRIORS.add(
    "vamp",
    _vamp,
    "VampPrior: q(z | u) mixed at learnable pseudo-inputs (500)",
    options=VampOptions,
    single_layer=True,
)
PRIORS.add(
    "maf",
    _maf,
    "autoregressive prior: masked autoregressive flow over z",
    options=MAFPriorOptions,
    single_layer=False,
)

__all__ = ["PRIORS", "MAFPriorOptions", "MixtureOptions", "VampOptions"]
