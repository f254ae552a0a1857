"""Additions to torch.distributions: fused likelihoods and masked batches of points."""

from .bernoulli import IndependentBernoulli
from .masked import MaskedIndependent

__all__ = ["IndependentBernoulli", "MaskedIndependent"]
