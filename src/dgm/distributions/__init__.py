"""Additions to torch.distributions: fused likelihoods and masked batches of points."""

from .bernoulli import IndependentBernoulli, is_binary
from .masked import MaskedIndependent

__all__ = ["IndependentBernoulli", "MaskedIndependent", "is_binary"]
