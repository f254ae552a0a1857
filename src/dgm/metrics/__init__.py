"""Evaluation metrics: log-likelihood, bits/dim, active units, ELBO terms, estimator diagnostics,
the disentanglement metrics of a code against ground-truth factors, and the GAN evaluation kit:
mode coverage (PacGAN's and stacked MNIST's), dgm's own feature classifier, and FID / KID /
precision-recall-density-coverage on its features (not Inception's)."""

from .bits import bits_per_dim, negative_log_likelihood
from .classifier import ChannelFeatures, FeatureClassifier, feature_classifier
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
from .likelihood import log_likelihood
from .modes import (
    PACGAN_SAMPLES,
    STACKED_MNIST_SAMPLES,
    ModeCoverage,
    StackedModes,
    mode_coverage,
    stacked_mnist_modes,
)
from .objects import CountReport, box_iou, count_report
from .quality import PRDC, fid, kid, prdc, sample_quality

__all__ = [
    "DISENTANGLEMENT_METRICS",
    "PACGAN_SAMPLES",
    "PRDC",
    "STACKED_MNIST_SAMPLES",
    "ChannelFeatures",
    "CountReport",
    "ELBOTerms",
    "FeatureClassifier",
    "GradientStats",
    "MetricSettings",
    "ModeCoverage",
    "StackedModes",
    "active_units",
    "activity",
    "beta_vae_score",
    "bits_per_dim",
    "box_iou",
    "count_report",
    "dci",
    "disentanglement_metrics",
    "effective_sample_size",
    "elbo_terms",
    "factor_vae_score",
    "feature_classifier",
    "fid",
    "gradient_stats",
    "kid",
    "log_likelihood",
    "mig",
    "mig_sampled",
    "mode_coverage",
    "modularity_explicitness",
    "negative_log_likelihood",
    "posterior_means",
    "prdc",
    "sample_codes",
    "sample_quality",
    "sap",
    "stacked_mnist_modes",
]
