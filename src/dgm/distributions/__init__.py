"""Distributions with fused log-densities for the hot paths of training."""

from .bernoulli import IndependentBernoulli

__all__ = ["IndependentBernoulli"]
