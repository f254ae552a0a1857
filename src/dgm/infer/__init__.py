"""Inference with a model and (optionally) a trained guide: importance sampling, MCMC, diagnostics."""

from .adaptive import adaptive_importance_sampling
from .annealed import SCHEDULES, AISResult, BDMCResult, ais, bdmc, simulate, temperatures
from .diagnostics import effective_sample_size, r_hat
from .hmc import HMC, posterior_log_density
from .importance import WeightedSamples, importance_sampling
from .mcmc import Chains, log_joint, metropolis_hastings

__all__ = [
    "HMC",
    "SCHEDULES",
    "AISResult",
    "BDMCResult",
    "Chains",
    "WeightedSamples",
    "adaptive_importance_sampling",
    "ais",
    "bdmc",
    "effective_sample_size",
    "importance_sampling",
    "log_joint",
    "metropolis_hastings",
    "posterior_log_density",
    "r_hat",
    "simulate",
    "temperatures",
]
