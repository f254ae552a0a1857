"""Evaluation metrics: log-likelihood, active units, ELBO terms, and estimator diagnostics."""

from .diagnostics import GradientStats, effective_sample_size, gradient_stats
from .latent import ELBOTerms, active_units, activity, elbo_terms, posterior_means
from .log_likelihood import log_likelihood

__all__ = [
    "ELBOTerms",
    "GradientStats",
    "active_units",
    "activity",
    "effective_sample_size",
    "elbo_terms",
    "gradient_stats",
    "log_likelihood",
    "posterior_means",
]
