"""Evaluation metrics: log-likelihood, bits/dim, active units, ELBO terms, and estimator diagnostics."""

from .bits import bits_per_dim, negative_log_likelihood
from .diagnostics import GradientStats, effective_sample_size, gradient_stats
from .latent import ELBOTerms, active_units, activity, elbo_terms, posterior_means
from .log_likelihood import log_likelihood

__all__ = [
    "ELBOTerms",
    "GradientStats",
    "active_units",
    "activity",
    "bits_per_dim",
    "effective_sample_size",
    "elbo_terms",
    "gradient_stats",
    "log_likelihood",
    "negative_log_likelihood",
    "posterior_means",
]
