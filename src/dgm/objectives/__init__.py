"""Objectives: ``log_weights`` and pure per-data-point bounds computed from it."""

from .elbo import ELBO, elbo
from .iwae import IWAE, iwae, vimco_signal
from .log_weights import LogWeights, log_weights

__all__ = ["ELBO", "IWAE", "LogWeights", "elbo", "iwae", "log_weights", "vimco_signal"]
