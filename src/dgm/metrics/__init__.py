"""Evaluation metrics: importance-sampled log-likelihood, active units, ELBO terms."""

from .latent import ELBOTerms, active_units, activity, elbo_terms, posterior_means
from .log_likelihood import log_likelihood

__all__ = [
    "ELBOTerms",
    "active_units",
    "activity",
    "elbo_terms",
    "log_likelihood",
    "posterior_means",
]
