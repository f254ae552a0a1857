"""Additions to torch.distributions: fused likelihoods, masked batches, learnable priors."""

from .bernoulli import IndependentBernoulli, is_binary
from .masked import MaskedIndependent
from .mixture import DiagonalGaussianMixture
from .priors import MixtureOfGaussiansPrior, StandardNormalPrior, VampPrior

__all__ = [
    "DiagonalGaussianMixture",
    "IndependentBernoulli",
    "MaskedIndependent",
    "MixtureOfGaussiansPrior",
    "StandardNormalPrior",
    "VampPrior",
    "is_binary",
]
