"""Evaluation metrics: log-likelihood, bits/dim, active units, ELBO terms, estimator diagnostics,
and the disentanglement metrics of a code against ground-truth factors."""

from .bits import bits_per_dim, negative_log_likelihood
from .diagnostics import GradientStats, effective_sample_size, gradient_stats
from .disentanglement import (
    beta_vae_score,
    dci,
    factor_vae_score,
    mig,
    mig_sampled,
    modularity_explicitness,
    sample_codes,
    sap,
)
from .disentanglement_suite import DISENTANGLEMENT_METRICS, MetricSettings, disentanglement_metrics
from .latent import ELBOTerms, active_units, activity, elbo_terms, posterior_means
from .log_likelihood import log_likelihood

__all__ = [
    "DISENTANGLEMENT_METRICS",
    "ELBOTerms",
    "GradientStats",
    "MetricSettings",
    "active_units",
    "activity",
    "beta_vae_score",
    "bits_per_dim",
    "dci",
    "disentanglement_metrics",
    "effective_sample_size",
    "elbo_terms",
    "factor_vae_score",
    "gradient_stats",
    "log_likelihood",
    "mig",
    "mig_sampled",
    "modularity_explicitness",
    "negative_log_likelihood",
    "posterior_means",
    "sample_codes",
    "sap",
]
